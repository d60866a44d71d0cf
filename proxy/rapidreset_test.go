package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
)

// rapidReset opens an HTTP/2 connection over TLS and sends n streams, each
// HEADERS then RST_STREAM at once, the way the 2023 "rapid reset" attack
// does; it reports whether the server answered GOAWAY, waiting for it up
// to the deadline after the last stream.
func rapidReset(t *testing.T, addr, host string, n int) (goaway bool) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: host})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() { // read until GOAWAY or the connection ends
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				close(got)
				return
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range n {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			break // the server closed the connection after its GOAWAY
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
	}
	select {
	case <-got:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// Issue 25 point 2: HTTP/2 rapid reset. Streams reset before an instance
// was picked are not forwarded; every connection that resets streams
// faster than its budget is told GOAWAY; the cancelled requests are
// counted, and their access-log lines sampled, not one per stream.
func TestRapidResetNotForwarded(t *testing.T) {
	var access systemtest.Buffer
	tp := newTestProxy(t, Config{ResetRate: 1, ResetBurst: 20,
		AccessLog: slog.New(slog.NewJSONHandler(&access, nil))})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	srv := httptest.NewUnstartedServer(tp.Proxy)
	srv.EnableHTTP2 = true
	srv.Config.ConnContext = tp.ConnContext
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")

	const conns, streams = 3, 2000
	for c := range conns {
		if !rapidReset(t, addr, "nairobi.school.localhost", streams) {
			t.Errorf("connection %d: %d reset streams and no GOAWAY", c, streams)
		}
	}
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	hits := up.hits.Load()
	cancelled := testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", "499"))
	t.Logf("%d connections × %d reset streams: %d reached the app, %v counted as cancelled, %v GOAWAYs",
		conns, streams, hits, cancelled, testutil.ToFloat64(tp.metrics.resetFloods))
	// Each connection gets at most its burst of cancellations (and the
	// streams the server had started before its GOAWAY); a stream that
	// raced ahead of its reset may reach the app, but not the flood.
	if max := int64(conns * 100); hits > max {
		t.Errorf("%d reset streams reached the app, want at most %d", hits, max)
	}
	if got := testutil.ToFloat64(tp.metrics.resetFloods); got != conns {
		t.Errorf("%s = %v, want %d", MetricResetFloods, got, conns)
	}
	if n := strings.Count(access.String(), `"status":499`); n > 1 {
		t.Errorf("%d access-log lines for cancelled requests, want the first only (then one per period)", n)
	}

	// An ordinary HTTP/2 client on a new connection is served.
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusOK { // Host is 127.0.0.1: the unknown school
		t.Errorf("a normal request after the flood: %d", resp.StatusCode)
	}
}
