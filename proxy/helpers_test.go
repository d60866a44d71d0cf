package proxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

// echo is what a test upstream answers: who it is and what it received.
type echo struct {
	Tenant   string      `json:"tenant"`
	Instance string      `json:"instance"`
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	Path     string      `json:"path"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body"`
}

// upstream is a test app instance.
type upstream struct {
	*httptest.Server
	tenant, id string
	hits       atomic.Int64
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

func (u *upstream) instance() registry.Instance {
	return registry.Instance{ID: u.id, Tenant: u.tenant, Addr: u.addr(), Healthy: true}
}

// newUpstream starts an upstream that echoes who it is and what it got.
func newUpstream(t testing.TB, tenant, id string) *upstream {
	return newUpstreamFunc(t, tenant, id, func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Tenant: tenant, Instance: id, Method: r.Method, Host: r.Host,
			Path: r.URL.Path, Header: r.Header, Body: string(body)})
	})
}

// newUpstreamFunc starts an upstream that counts hits, reads the body and
// hands over to fn.
func newUpstreamFunc(t testing.TB, tenant, id string, fn func(http.ResponseWriter, *http.Request, []byte)) *upstream {
	t.Helper()
	u := &upstream{tenant: tenant, id: id}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		fn(w, r, body)
	}))
	t.Cleanup(u.Close)
	return u
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func tenant(t testing.TB, name, display string, hosts ...string) registry.Tenant {
	t.Helper()
	tn, err := registry.NewTenant(name, hosts, display)
	if err != nil {
		t.Fatalf("NewTenant(%s): %v", name, err)
	}
	return tn
}

func suspended(tn registry.Tenant) registry.Tenant {
	tn.State = registry.StateSuspended
	return tn
}

// testProxy is a proxy behind a real HTTP server.
type testProxy struct {
	*Proxy
	reg   *prometheus.Registry
	front *httptest.Server
}

func newTestProxy(t testing.TB, cfg Config) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Registerer = reg
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{Proxy: p, reg: reg, front: httptest.NewServer(p)}
	t.Cleanup(tp.front.Close)
	return tp
}

// request is one request to send through the proxy.
type request struct {
	method, host, path string
	body               string // empty: no body
	chunked            bool   // send body without a Content-Length
	header             http.Header
}

// response is what came back, body read.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) echo(t testing.TB) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("status %d, body is not an upstream echo: %v\n%s", r.status, err, r.body)
	}
	return e
}

func (tp *testProxy) do(t testing.TB, rq request) response {
	t.Helper()
	resp, err := tp.send(context.Background(), rq)
	if err != nil {
		t.Fatalf("%s %s%s: %v", rq.method, rq.host, rq.path, err)
	}
	return resp
}

func (tp *testProxy) send(ctx context.Context, rq request) (response, error) {
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	if rq.path == "" {
		rq.path = "/"
	}
	var body io.Reader
	switch {
	case rq.chunked:
		body = struct{ io.Reader }{strings.NewReader(rq.body)} // hides the length
	case rq.body != "":
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, tp.front.URL+rq.path, body)
	if err != nil {
		return response{}, err
	}
	req.Host = rq.host
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	resp, err := tp.front.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// recordingWaker remembers Wake calls and signals each one.
type recordingWaker struct {
	mu      sync.Mutex
	tenants []string
	called  chan string
}

func newRecordingWaker() *recordingWaker { return &recordingWaker{called: make(chan string, 100)} }

func (w *recordingWaker) Wake(_ context.Context, tenant string) {
	w.mu.Lock()
	w.tenants = append(w.tenants, tenant)
	w.mu.Unlock()
	w.called <- tenant
}

func (w *recordingWaker) calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tenants...)
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
