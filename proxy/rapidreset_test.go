package proxy

import (
	"log/slog"
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
		res, err := h2flood.Run(t.Context(), h2flood.Options{Addr: addr, Host: "nairobi.school.localhost", Streams: streams, Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if !res.GoAway {
			t.Errorf("connection %d: %d reset streams and no GOAWAY", c, res.Streams)
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
