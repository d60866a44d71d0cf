//go:build unix

package supervisor

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

// fakeActivity is the proxy's side of idle stop, set by the test.
type fakeActivity struct {
	mu       sync.Mutex
	inFlight map[string]int64
	last     map[string]time.Time
}

func newActivity() *fakeActivity {
	return &fakeActivity{inFlight: map[string]int64{}, last: map[string]time.Time{}}
}

func (a *fakeActivity) Activity(tenant string) (int64, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight[tenant], a.last[tenant]
}

func (a *fakeActivity) set(tenant string, inFlight int64, last time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inFlight[tenant], a.last[tenant] = inFlight, last
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// waitState waits for tenant's child to be in state st.
func (h *harness) waitState(tenant string, st ChildState) ChildStatus {
	h.t.Helper()
	var got ChildStatus
	waitFor(h.t, 30*time.Second, tenant+" "+string(st), func() bool {
		got, _ = h.status(tenant)
		return got.State == st
	})
	return got
}

func TestIdleChildIsStoppedThenWoken(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Second
		c.Activity = act
	})
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)

	st := h.waitState("accra", StateIdle)
	if ins := h.instances("accra"); len(ins) != 0 {
		t.Errorf("idle tenant still registered: %v", ins)
	}
	waitFor(t, 20*time.Second, "the idle child to exit", func() bool { return !alive(pid) })
	if st.PID != 0 || st.Restarts != 0 {
		t.Errorf("idle status = %+v, want no pid and no restart", st)
	}
	if n := counter(t, h.sup.met.idleStops); n != 1 {
		t.Errorf("idle stops = %v, want 1", n)
	}

	// Nothing wakes it but a Wake.
	time.Sleep(500 * time.Millisecond)
	if n := len(h.startTimes("accra")); n != 1 {
		t.Fatalf("%d starts while idle, want 1", n)
	}
	h.sup.Wake(context.Background(), "accra")
	_, pid2 := h.waitInstance("accra", true, pid)
	if pid2 == pid {
		t.Fatal("woken tenant served by the old process")
	}
	if n := counter(t, h.sup.met.coldStarts); n != 1 {
		t.Errorf("cold starts = %v, want 1", n)
	}
	if n := testutil.CollectAndCount(h.sup.met.wakeSeconds); n != 1 {
		t.Errorf("wake-to-ready histogram has %d series, want 1", n)
	}
}

func TestRequestsInFlightKeepChildAlive(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Second
		c.Activity = act
	})
	act.set("nairobi", 1, time.Time{}) // a long download that never finishes a request
	h.createTenant("nairobi")
	h.start()
	_, pid := h.waitInstance("nairobi", true, 0)
	time.Sleep(3 * time.Second) // three idle timeouts
	if st, _ := h.status("nairobi"); st.State != StateReady || st.PID != pid {
		t.Fatalf("with a request in flight: %+v, want ready with pid %d", st, pid)
	}
	// Requests keep finishing: still alive.
	for range 3 {
		act.set("nairobi", 0, time.Now())
		time.Sleep(600 * time.Millisecond)
	}
	if st, _ := h.status("nairobi"); st.State != StateReady || st.PID != pid {
		t.Fatalf("with recent requests: %+v, want ready with pid %d", st, pid)
	}
	// Then nothing: idle.
	h.waitState("nairobi", StateIdle)
}

func TestTenantIdleTimeoutOverridesDefault(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = 0 // never, by default
		c.Activity = act
	})
	h.createTenant("accra")
	lagos := h.createTenant("lagos")
	h.start()
	h.waitInstance("accra", true, 0)
	h.waitInstance("lagos", true, 0)
	if _, err := h.reg.SetIdleTimeout(context.Background(), lagos.Name, "1s"); err != nil {
		t.Fatal(err)
	}
	h.waitState("lagos", StateIdle)
	if st, _ := h.status("accra"); st.State != StateReady {
		t.Errorf("accra (no override, default never) = %+v, want ready", st)
	}
	if n := len(h.startTimes("lagos")); n != 1 {
		t.Errorf("changing the idle timeout restarted lagos: %d starts", n)
	}
}

// TestWakeStartsOnlyActiveTenant: with tenants starting idle, a wake
// (direct or through the registry) starts exactly the woken active
// tenant; a suspended, deleted or unknown tenant is never started, and
// no other tenant is.
func TestWakeStartsOnlyActiveTenant(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Minute
		c.Activity = act
		c.StartIdle = true
	})
	h.sup.cfg.WakeSource = h.reg
	ctx := context.Background()
	for _, n := range []string{"accra", "lagos", "kumasi", "gone"} {
		h.createTenant(n)
	}
	if _, err := h.reg.SetState(ctx, "kumasi", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.MarkDeleted(ctx, "gone", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitState("accra", StateIdle)
	h.waitState("lagos", StateIdle)

	for _, n := range []string{"kumasi", "gone", "nobody"} {
		h.sup.Wake(ctx, n)
		if err := h.reg.RequestWake(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.reg.RequestWake(ctx, "accra"); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("accra", true, 0)
	time.Sleep(time.Second) // time for a wrong start to show
	for _, n := range []string{"lagos", "kumasi", "gone", "nobody"} {
		if s := h.startTimes(n); len(s) != 0 {
			t.Errorf("a wake for accra or %s started %s %d times", n, n, len(s))
		}
		if ins := h.instances(n); len(ins) != 0 {
			t.Errorf("%s has instances: %v", n, ins)
		}
	}
	// Resumed, kumasi starts idle: the wake while it was suspended is
	// not kept for later.
	if _, err := h.reg.SetState(ctx, "kumasi", registry.StateActive); err != nil {
		t.Fatal(err)
	}
	h.waitState("kumasi", StateIdle)
	if s := h.startTimes("kumasi"); len(s) != 0 {
		t.Errorf("kumasi started after resume without a wake: %d starts", len(s))
	}
	h.sup.Wake(ctx, "lagos")
	h.waitInstance("lagos", true, 0)
}

func TestHungChildIsReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.HealthInterval = 200 * time.Millisecond
		c.LivenessFailures = 3
	})
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	_, pid2 := h.waitInstance("accra", true, pid)
	if alive(pid) {
		t.Errorf("hung process %d still alive after its replacement %d is ready", pid, pid2)
	}
	if n := counter(t, h.sup.met.livenessRestarts); n != 1 {
		t.Errorf("liveness restarts = %v, want 1", n)
	}
	if lines := h.logs.linesWith(`"msg":"child hung: health checks unanswered; killing and replacing it"`); len(lines) != 1 {
		t.Errorf("%d 'child hung' log lines, want 1", len(lines))
	}
}

// TestGateServesWokenFirst: with every start slot taken, a start someone
// waits for goes ahead of earlier ones nobody waits for.
func TestGateServesWokenFirst(t *testing.T) {
	s := &Supervisor{met: newMetrics()}
	g := newGate(1)
	mk := func() *child { return &child{s: s} }
	ctx := context.Background()
	release, ok := g.acquire(ctx, mk())
	if !ok {
		t.Fatal("first acquire failed")
	}
	order := make(chan string, 3)
	started := make(chan struct{})
	var wg sync.WaitGroup
	queue := func(name string, c *child) {
		wg.Go(func() {
			started <- struct{}{}
			rel, ok := g.acquire(ctx, c)
			if !ok {
				t.Errorf("%s: acquire failed", name)
				return
			}
			order <- name
			rel()
		})
		<-started
		waitFor(t, 10*time.Second, name+" queued", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, w := range g.waiters {
				if w.c == c {
					return true
				}
			}
			return false
		})
	}
	queue("eager1", mk())
	queue("eager2", mk())
	woken := mk()
	queue("woken", woken)
	woken.wakeUp(time.Now())
	g.promote(woken)
	release()
	wg.Wait()
	close(order)
	var got []string
	for n := range order {
		got = append(got, n)
	}
	if len(got) != 3 || got[0] != "woken" || got[1] != "eager1" || got[2] != "eager2" {
		t.Fatalf("start order %v, want [woken eager1 eager2]", got)
	}
	if g.free != 1 {
		t.Errorf("free slots after all released = %d, want 1", g.free)
	}
}
