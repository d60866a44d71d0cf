package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/internal/h2flood"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
)

// rapidResetServer is a proxy for nairobi (one instance) behind an HTTP/2
// TLS server with the proxy's ConnContext, as deploy/proxyserver runs it.
func rapidResetServer(t *testing.T, cfg Config) (*testProxy, *upstream, *httptest.Server) {
	t.Helper()
	tp := newTestProxy(t, cfg)
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	srv := httptest.NewUnstartedServer(tp.Proxy)
	srv.Listener = tp.LimitListener(srv.Listener) // under TLS, as deploy/proxyserver does
	srv.EnableHTTP2 = true
	srv.Config.ConnContext = tp.ConnContext
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return tp, up, srv
}

// flood runs one rapid-reset connection from the loopback address from
// (each reset resetAfter its request, 0: in the same packet) and wants it
// told GOAWAY.
func flood(t *testing.T, srv *httptest.Server, from string, streams int, resetAfter time.Duration) {
	t.Helper()
	if res := floodOnly(t, srv, from, streams, resetAfter); !res.GoAway {
		t.Errorf("a connection from %s: %d reset streams and no GOAWAY", from, res.Streams)
	}
}

// floodOnly is flood without the GOAWAY check: where the budget is large,
// how many resets the proxy sees is Go's to decide (its HTTP/2 server
// never starts the handler of a stream reset while queued behind others).
func floodOnly(t *testing.T, srv *httptest.Server, from string, streams int, resetAfter time.Duration) h2flood.Result {
	t.Helper()
	res, err := h2flood.Run(t.Context(), h2flood.Options{Addr: strings.TrimPrefix(srv.URL, "https://"), From: from,
		Host: "nairobi.school.localhost", Streams: streams, ResetAfter: resetAfter, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// getFrom asks nairobi's front page over HTTP/2 on a new connection from
// the loopback address from, and wants the app's answer within 30 s.
func getFrom(t *testing.T, srv *httptest.Server, from string) {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	req.Host = "nairobi.school.localhost"
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("a normal request from %s: %v", from, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("a normal request from %s: %s over HTTP/%d, want 200 over HTTP/2", from, resp.Status, resp.ProtoMajor)
	}
}

// Issue 25 point 2: HTTP/2 rapid reset. Streams reset before an instance
// was picked are not forwarded; every connection that resets streams
// faster than its budget is told GOAWAY; the cancelled requests are
// counted, and their access-log lines sampled, not one per stream.
//
// The hold is a minute here, so that no timing but the mechanism decides:
// a held stream of the flood leaves when the server has read its reset.
// What is guaranteed: no stream whose reset came in the same packet as its
// request reaches the app, on any connection, the first one included (the
// request waits until the server has acted on the frames read with it);
// on every connection from an address that flooded (and on a connection
// once it is suspect), no reset stream reaches the app even when each
// reset comes 20 ms after its request (without the hold every one of those
// would); a client at another address is not held.
func TestRapidResetNotForwarded(t *testing.T) {
	var access systemtest.Buffer
	tp, up, srv := rapidResetServer(t, Config{ResetRate: 1, ResetBurst: 20, ResetHold: time.Minute,
		AccessLog: slog.New(slog.NewJSONHandler(&access, nil))})

	const streams = 2000
	flood(t, srv, "127.0.0.1", streams, 0)
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if first := up.hits.Load(); first != 0 {
		t.Errorf("%d of %d reset streams of the first connection reached the app, want none", first, streams)
	}
	// The flood's next connections, from the same address: one as fast,
	// one whose resets come late (the budget of 20 is spent by stream 21).
	flood(t, srv, "127.0.0.1", streams, 0)
	flood(t, srv, "127.0.0.1", 40, 20*time.Millisecond)
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d reset streams of the next connections from the flooding address reached the app, want none", n)
	}
	cancelled := testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", "499"))
	t.Logf("3 connections: none reached the app, %v counted as cancelled, %v GOAWAYs",
		cancelled, testutil.ToFloat64(tp.metrics.resetFloods))
	if got := testutil.ToFloat64(tp.metrics.resetFloods); got != 3 {
		t.Errorf("%s = %v, want 3", MetricResetFloods, got)
	}
	if n := strings.Count(access.String(), `"status":499`); n > 1 {
		t.Errorf("%d access-log lines for cancelled requests, want the first only (then one per period)", n)
	}

	// A client at another address is not held (a minute here): served.
	getFrom(t, srv, "127.0.0.2")
}

// Without any hold, a reset that comes in the same packet as its request
// never lets the request reach the app, on fresh connections from fresh
// addresses: the request waits until the server has acted on the frames
// read with it, which is no timing (without that wait, some of each
// connection's streams raced ahead of their resets).
func TestSamePacketResetNeverForwarded(t *testing.T) {
	tp, up, srv := rapidResetServer(t, Config{ResetRate: 1, ResetBurst: 1000, ResetHold: -1})
	for _, from := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		floodOnly(t, srv, from, 2000, 0) // what is asserted: none reaches the app
	}
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d of 6000 streams reset in the packet of their request reached the app, want none", n)
	}
	getFrom(t, srv, "127.0.0.3") // an unreset request is forwarded
	if n := up.hits.Load(); n != 1 {
		t.Errorf("the app saw %d requests after a normal one, want 1", n)
	}
}

// A client that shares the flooding address (a NAT) waits at most the
// hold, and is served.
func TestResetHoldServesHeldRequests(t *testing.T) {
	tp, up, srv := rapidResetServer(t, Config{ResetRate: 1, ResetBurst: 20, ResetHold: 50 * time.Millisecond})
	flood(t, srv, "127.0.0.1", 500, 0)
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	before := up.hits.Load()
	getFrom(t, srv, "127.0.0.1")
	if up.hits.Load() != before+1 {
		t.Errorf("the held request did not reach the app")
	}
}
