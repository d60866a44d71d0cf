package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// Scale to zero (issue 12), the proxy's side: Activity, held requests,
// route statuses and the registry waker.

func (tp *testProxy) routes(t *testing.T) Routes {
	t.Helper()
	rec := httptest.NewRecorder()
	tp.serveRoutes(rec, httptest.NewRequest(http.MethodGet, "/routes", nil))
	var out Routes
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("/routes: %v\n%s", err, rec.Body)
	}
	return out
}

func TestActivityCountsRequestsUntilTheirLastByte(t *testing.T) {
	tp := newTestProxy(t, Config{})
	release := make(chan struct{})
	up := newUpstreamFunc(t, "nairobi", "n1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("first half of a long download "))
		http.NewResponseController(w).Flush()
		<-release
		_, _ = w.Write([]byte("second half"))
	})
	accra := newUpstream(t, "accra", "a1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants: []registry.Tenant{
			tenant(t, "accra", "Accra", "accra.school.localhost"),
			tenant(t, "nairobi", "Nairobi", "nairobi.school.localhost"),
		},
		Instances: []registry.Instance{accra.instance(), up.instance()}})

	if n, last := tp.Activity("nairobi"); n != 0 || !last.IsZero() {
		t.Fatalf("before any request: Activity = %d, %v; want none", n, last)
	}
	done := make(chan response, 1)
	go func() { done <- tp.do(t, request{host: "nairobi.school.localhost"}) }()
	eventually(t, "the download in flight", func() bool { n, _ := tp.Activity("nairobi"); return n == 1 })
	time.Sleep(50 * time.Millisecond)
	if n, _ := tp.Activity("nairobi"); n != 1 {
		t.Fatalf("mid-download Activity = %d, want 1", n)
	}
	if n, last := tp.Activity("accra"); n != 0 || !last.IsZero() {
		t.Errorf("nairobi's download shows as accra's activity: %d, %v", n, last)
	}
	// The supervisor deregisters an idle instance before it stops it: a
	// download already running on it still counts, although the table
	// no longer lists it.
	tp.Update(registry.Snapshot{Version: 2,
		Tenants: []registry.Tenant{
			tenant(t, "accra", "Accra", "accra.school.localhost"),
			tenant(t, "nairobi", "Nairobi", "nairobi.school.localhost"),
		},
		Instances: []registry.Instance{accra.instance()}})
	if n, _ := tp.Activity("nairobi"); n != 1 {
		t.Fatalf("mid-download, instance dropped from the table: Activity = %d, want 1", n)
	}
	if n, _ := tp.Activity("accra"); n != 0 {
		t.Errorf("nairobi's download shows as accra's activity after the update: %d", n)
	}
	before := time.Now()
	close(release)
	if resp := <-done; resp.status != http.StatusOK {
		t.Fatalf("download: %d", resp.status)
	}
	n, last := tp.Activity("nairobi")
	if n != 0 || last.Before(before) {
		t.Errorf("after the download: Activity = %d, %v; want 0 and a time after %v", n, last, before)
	}
	if n, _ := tp.Activity("nobody"); n != 0 {
		t.Errorf("unknown tenant: %d in flight", n)
	}
}

func TestHeldClientThatLeavesIsForgotten(t *testing.T) {
	waker := newRecordingWaker()
	tp := newTestProxy(t, Config{HoldTimeout: time.Minute, Waker: waker})
	nairobi := tenant(t, "nairobi", "Nairobi", "nairobi.school.localhost")
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{nairobi}})
	if st := tp.routes(t).Hosts["nairobi.school.localhost"].Status; st != RouteIdle {
		t.Fatalf("status before any request = %q, want idle", st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := tp.send(ctx, request{host: "nairobi.school.localhost"}); done <- err }()
	<-waker.called
	eventually(t, "one held request", func() bool { n, _ := tp.Activity("nairobi"); return n == 1 })
	info := tp.routes(t).Hosts["nairobi.school.localhost"]
	if info.Status != RouteStarting || info.Held != 1 {
		t.Errorf("/routes while held: status %q held %d, want starting and 1", info.Status, info.Held)
	}
	if g := testutil.ToFloat64(tp.scale.held); g != 1 {
		t.Errorf("%s = %v, want 1", MetricHeldRequests, g)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client request: %v, want canceled", err)
	}
	eventually(t, "the held request forgotten", func() bool {
		n, _ := tp.Activity("nairobi")
		return n == 0 && testutil.ToFloat64(tp.scale.held) == 0
	})
	eventually(t, "a 499 recorded", func() bool {
		return testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", "499")) == 1
	})
	// The instance that appears later gets nothing from the gone client.
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 2, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{up.instance()}})
	time.Sleep(100 * time.Millisecond)
	if h := up.hits.Load(); h != 0 {
		t.Errorf("the instance got %d requests from a client that had left", h)
	}
	if st := tp.routes(t).Hosts["nairobi.school.localhost"].Status; st != RouteRunning {
		t.Errorf("status with an instance = %q, want running", st)
	}
}

func TestRegistryWakerWritesAWakeRequest(t *testing.T) {
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ctx := context.Background()
	_, cursor, err := reg.WatchWakes(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	tp := newTestProxy(t, Config{HoldTimeout: 100 * time.Millisecond, Waker: RegistryWaker{Registry: reg}})
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{tenant(t, "accra", "Accra", "accra.school.localhost")}})
	if resp := tp.do(t, request{host: "accra.school.localhost"}); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("no instance: %d, want 503 after the hold", resp.status)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wakes, _, err := reg.WatchWakes(wctx, cursor)
	if err != nil || len(wakes) != 1 || wakes[0].Tenant != "accra" {
		t.Fatalf("wakes = %+v, %v; want one for accra", wakes, err)
	}
}
