//go:build unix

package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
)

// proxyRef is the proxy as the supervisor's Activity and Router, as
// campus dev wires them (lateActivity): busy until the proxy exists.
type proxyRef struct{ p atomic.Pointer[proxy.Proxy] }

func (r *proxyRef) Activity(tenant string) (int64, time.Time) {
	p := r.p.Load()
	if p == nil {
		return 1, time.Now()
	}
	return p.Activity(tenant)
}

func (r *proxyRef) RoutesTo(tenant, id string) bool {
	p := r.p.Load()
	return p != nil && p.RoutesTo(tenant, id)
}

// feedProxy keeps p's table in line with reg, except while paused: then
// p keeps its last table, as a proxy whose registry watch lags would.
func feedProxy(ctx context.Context, reg registry.Registry, p *proxy.Proxy, paused *atomic.Bool) {
	snap, err := reg.Snapshot(ctx)
	for err != nil {
		if !sleep(ctx, 50*time.Millisecond) {
			return
		}
		snap, err = reg.Snapshot(ctx)
	}
	p.Update(snap)
	for {
		next, err := reg.Watch(ctx, snap.Version)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		snap = next
		for paused.Load() {
			if !sleep(ctx, 10*time.Millisecond) {
				return
			}
		}
		p.Update(snap)
	}
}

// TestIdleStopWaitsForProxyToDropInstance: the idle stop deregisters the
// instance but does not stop the process while the proxy still routes to
// it (its registry watch lags): a request sent meanwhile gets a 200 from
// that process, not a 502 from a closed listener. Once the proxy has
// caught up, the idle stop completes and the next request wakes a new
// process.
func TestIdleStopWaitsForProxyToDropInstance(t *testing.T) {
	t.Parallel()
	ref := &proxyRef{}
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Second
		c.Activity = ref
	})
	p, err := proxy.New(proxy.Config{
		Logger:      slog.New(slog.DiscardHandler),
		Registerer:  prometheus.NewRegistry(),
		HoldTimeout: time.Minute,
		Waker:       h.sup,
	})
	if err != nil {
		t.Fatal(err)
	}
	ref.p.Store(p)
	ctx, cancel := context.WithCancel(context.Background())
	var paused atomic.Bool
	done := make(chan struct{})
	go func() { defer close(done); feedProxy(ctx, h.reg, p, &paused) }()
	t.Cleanup(func() { cancel(); <-done })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	const host = "accra.school.localhost"

	h.createTenant("accra")
	h.start()
	in, pid := h.waitInstance("accra", true, 0)
	waitFor(t, 30*time.Second, "the proxy to route to accra", func() bool { return p.RoutesTo("accra", in.ID) })
	if code, _, err := fetch(ctx, front.URL, host, "/tenant"); err != nil || code != 200 {
		t.Fatalf("accra: %d %v", code, err)
	}

	paused.Store(true)
	waitFor(t, 30*time.Second, "the idle stop to deregister accra", func() bool { return len(h.instances("accra")) == 0 })
	if !p.RoutesTo("accra", in.ID) {
		t.Fatal("the paused proxy dropped the instance")
	}
	// Without the wait for the proxy, the process is gone idleDrain
	// (250ms) after the deregistration; give it ample time to go.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && alive(pid); {
		time.Sleep(20 * time.Millisecond)
	}
	code, body, err := fetch(ctx, front.URL, host, "/pid")
	if err != nil || code != 200 || body != fmt.Sprint(pid) {
		t.Fatalf("request while the proxy still routes to the idle instance: %d %q %v; want 200 from pid %d", code, body, err, pid)
	}

	paused.Store(false)
	h.waitState("accra", StateIdle)
	waitFor(t, 30*time.Second, "the idle process to exit", func() bool { return !alive(pid) })
	if p.RoutesTo("accra", in.ID) {
		t.Error("the proxy still routes to the stopped instance")
	}
	code, body, err = fetch(ctx, front.URL, host, "/pid")
	if err != nil || code != 200 || body == fmt.Sprint(pid) {
		t.Fatalf("after the idle stop: %d %q %v; want 200 from a new process", code, body, err)
	}
}
