//go:build unix

package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

func TestNewValidates(t *testing.T) {
	reg := newHarness(t, nil).reg
	cmd := childCommand(nil)
	dup := prometheus.NewRegistry()
	if _, err := New(Config{Registry: reg, Command: cmd, Registerer: dup}); err != nil {
		t.Fatalf("first New: %v", err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no registry", Config{Command: cmd}},
		{"no command", Config{Registry: reg}},
		{"max below min", Config{Registry: reg, Command: cmd, BackoffMin: time.Second, BackoffMax: time.Millisecond}},
		{"metrics already registered", Config{Registry: reg, Command: cmd, Registerer: dup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestActiveTenantsGetHealthyInstances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.createTenant("nairobi")
	h.createTenant("accra")
	h.start()

	for _, name := range []string{"nairobi", "accra"} {
		in, pid := h.waitInstance(name, true, 0)
		if !strings.HasPrefix(in.ID, testPrefix+name+"-") {
			t.Errorf("instance ID %q, want prefix %q", in.ID, testPrefix+name+"-")
		}
		if !strings.HasPrefix(in.Addr, "127.0.0.1:") {
			t.Errorf("instance addr %q is not on 127.0.0.1", in.Addr)
		}
		// The address answers, and it is this tenant's process.
		got, err := get(in.Addr, name, "/tenant")
		if err != nil || got != name {
			t.Errorf("GET %s/tenant = %q, %v; want %q", in.Addr, got, err, name)
		}
		st, ok := h.status(name)
		if !ok || st.State != StateReady || st.PID != pid || st.Addr != in.Addr || st.InstanceID != in.ID {
			t.Errorf("Status(%s) = %+v, %v; want ready, pid %d, addr %s", name, st, ok, pid, in.Addr)
		}
		if lines := h.logs.linesWith(`"msg":"child ready"`, `"tenant":"`+name+`"`); len(lines) != 1 {
			t.Errorf("want one 'child ready' log line for %s, got %q", name, lines)
		}
	}
	if got := testutil.ToFloat64(h.sup.met.running); got != 2 {
		t.Errorf("%s = %v, want 2", MetricChildrenRunning, got)
	}
	if n := testutil.CollectAndCount(h.prom, MetricStartSeconds); n != 1 {
		t.Errorf("%s series = %d, want 1", MetricStartSeconds, n)
	}
	waitFor(t, 60*time.Second, "children's stdout copied to Output", func() bool {
		out := h.out.String()
		return strings.Contains(out, "child nairobi listening on") && strings.Contains(out, "child accra listening on")
	})
}

func TestKilledChildIsRestarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.BackoffMin = 400 * time.Millisecond })
	h.createTenant("nairobi")
	h.start()
	old, oldPID := h.waitInstance("nairobi", true, 0)

	// Record whether the registry ever shows nairobi without an instance.
	ctx, cancel := context.WithCancel(context.Background())
	gap := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		var v uint64
		for {
			snap, err := h.reg.Watch(ctx, v)
			if err != nil {
				return
			}
			v = snap.Version
			n := 0
			for _, in := range snap.Instances {
				if in.Tenant == "nairobi" {
					n++
				}
			}
			if n == 0 {
				close(gap)
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-watchDone })

	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	in, pid := h.waitInstance("nairobi", true, oldPID)
	select {
	case <-gap:
	default:
		t.Error("the killed child's instance was not deregistered before the restart")
	}
	if alive(oldPID) {
		t.Errorf("old pid %d still alive", oldPID)
	}
	if got, err := get(in.Addr, "nairobi", "/tenant"); err != nil || got != "nairobi" {
		t.Errorf("new instance answers %q, %v", got, err)
	}
	st, _ := h.status("nairobi")
	if st.Restarts != 1 || st.PID != pid || st.LastExit != "signal: killed" {
		t.Errorf("Status = %+v; want 1 restart, pid %d, last exit 'signal: killed' (old instance %s)", st, pid, old.ID)
	}
	if got := testutil.ToFloat64(h.sup.met.restarts.WithLabelValues("nairobi")); got != 1 {
		t.Errorf("%s{tenant=nairobi} = %v, want 1", MetricRestartsTotal, got)
	}
	if lines := h.logs.linesWith(`"msg":"child exited"`, `"signal":"killed"`, `"tenant":"nairobi"`); len(lines) != 1 {
		t.Errorf("want one 'child exited' log line with the signal, got %q", lines)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.BackoffMin = 100 * time.Millisecond
		c.BackoffMax = 10 * time.Second
	})
	h.setMode("accra", mode{crashAlways: true})
	h.createTenant("accra")
	h.start()

	waitFor(t, 30*time.Second, "6 starts of a crashing child", func() bool { return len(h.startTimes("accra")) >= 6 })
	starts := h.startTimes("accra")
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]))
	}
	// Backoffs are drawn from [50,100]ms, [100,200], [200,400], [400,800],
	// [800,1600]: the fifth gap exceeds the first by at least 700ms plus
	// any difference in start-up time.
	if gaps[4] < gaps[0]+500*time.Millisecond {
		t.Errorf("backoff did not grow: gaps between starts %v", gaps)
	}
	if ins := h.instances("accra"); len(ins) != 0 {
		t.Errorf("crashing child was registered: %v", ins)
	}
	st, _ := h.status("accra")
	if st.Restarts < 5 || st.LastExit != "exit status 3" {
		t.Errorf("Status = %+v; want >= 5 restarts, last exit 'exit status 3'", st)
	}
	if !strings.Contains(h.out.String(), "child accra crashing at once") {
		t.Error("the child's stderr did not reach Output")
	}
}

func TestBackoffBounds(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		n        int
		min, max time.Duration
		want     time.Duration // before jitter: result in [want/2, want]
	}{
		{1, 100 * ms, time.Second, 100 * ms},
		{2, 100 * ms, time.Second, 200 * ms},
		{4, 100 * ms, time.Second, 800 * ms},
		{5, 100 * ms, time.Second, time.Second},
		{1000, 100 * ms, time.Second, time.Second},
		{3, time.Second, time.Second, time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if got := backoff(tt.n, tt.min, tt.max); got < tt.want/2 || got > tt.want {
				t.Fatalf("backoff(%d, %s, %s) = %s, want within [%s, %s]", tt.n, tt.min, tt.max, got, tt.want/2, tt.want)
			}
		}
	}
}

func TestTenantCreatedWhileRunningIsStarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	waitFor(t, 60*time.Second, "supervisor started", func() bool {
		return len(h.logs.linesWith(`"msg":"supervisor started"`)) == 1
	})
	if st := h.sup.Status(); len(st) != 0 {
		t.Fatalf("Status with no tenants = %+v", st)
	}
	h.createTenant("default")
	h.waitInstance("default", true, 0)
}

func TestInactiveTenantIsStoppedAndDeregistered(t *testing.T) {
	tests := []struct {
		name   string
		action func(context.Context, registry.Registry, string) error
		metric float64 // restarts series left for the tenant
	}{
		{"suspend", func(ctx context.Context, r registry.Registry, n string) error {
			_, err := r.SetState(ctx, n, registry.StateSuspended)
			return err
		}, 1},
		{"delete", func(ctx context.Context, r registry.Registry, n string) error {
			return r.DeleteTenant(ctx, n)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.createTenant("nairobi")
			h.createTenant("accra")
			h.start()
			_, pid := h.waitInstance("nairobi", true, 0)
			_, otherPID := h.waitInstance("accra", true, 0)

			if err := tt.action(context.Background(), h.reg, "nairobi"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "nairobi's child gone", func() bool {
				_, listed := h.status("nairobi")
				return !alive(pid) && len(h.instances("nairobi")) == 0 && !listed
			})
			if lines := h.logs.linesWith(`"msg":"child stopped"`, `"tenant":"nairobi"`, `"exit_code":0`); len(lines) != 1 {
				t.Errorf("want one 'child stopped' line with exit code 0 (SIGTERM honoured), got %q", lines)
			}
			// The other tenant is untouched.
			if !alive(otherPID) || len(h.instances("accra")) != 1 {
				t.Errorf("accra's child was disturbed")
			}
			if n := testutil.CollectAndCount(h.sup.met.restarts); n != 1+int(tt.metric) {
				t.Errorf("%s has %d series, want %d", MetricRestartsTotal, n, 1+int(tt.metric))
			}
		})
	}
}

func TestChildIgnoringSIGTERMIsKilled(t *testing.T) {
	t.Parallel()
	const grace = 1500 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.StopGrace = grace })
	h.setMode("nairobi", mode{ignoreTerm: true})
	h.createTenant("nairobi")
	h.start()
	_, pid := h.waitInstance("nairobi", true, 0)

	suspended := time.Now()
	if _, err := h.reg.SetState(context.Background(), "nairobi", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "instance deregistered", func() bool { return len(h.instances("nairobi")) == 0 })
	// Deregistration comes before any signal, so the process (which
	// ignores SIGTERM) is still there.
	if !alive(pid) {
		t.Error("child died before its instance was deregistered, or despite ignoring SIGTERM")
	}
	waitFor(t, 60*time.Second, "child killed", func() bool { return !alive(pid) })
	if took := time.Since(suspended); took < grace {
		t.Errorf("child died %s after suspension, before StopGrace %s", took, grace)
	}
	if lines := h.logs.linesWith(`"msg":"child ignored SIGTERM; killing it"`, `"tenant":"nairobi"`); len(lines) != 1 {
		t.Errorf("want one SIGKILL warning, got %q", lines)
	}
	waitFor(t, 60*time.Second, "'child stopped' log with signal", func() bool {
		return len(h.logs.linesWith(`"msg":"child stopped"`, `"signal":"killed"`, `"tenant":"nairobi"`)) == 1
	})
}

func TestUnhealthyChildIsReregistered(t *testing.T) {
	t.Parallel()
	flag := filepath.Join(t.TempDir(), "unhealthy")
	h := newHarness(t, nil)
	h.setMode("accra", mode{unhealthyFile: flag})
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)

	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("accra", false, 0)
	if st, _ := h.status("accra"); st.State != StateUnhealthy || st.PID != pid {
		t.Errorf("Status = %+v, want unhealthy with pid %d", st, pid)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("accra", true, 0)
	if st, _ := h.status("accra"); st.State != StateReady || st.PID != pid || st.Restarts != 0 {
		t.Errorf("Status = %+v, want ready with pid %d and no restart", st, pid)
	}
}

func TestChildNeverReadyIsRestarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ReadyTimeout = 500 * time.Millisecond })
	h.setMode("default", mode{neverReady: true})
	h.createTenant("default")
	h.start()
	waitFor(t, 20*time.Second, "a restart", func() bool {
		st, _ := h.status("default")
		return st.Restarts >= 1
	})
	if ins := h.instances("default"); len(ins) != 0 {
		t.Errorf("never-ready child was registered: %v", ins)
	}
	if lines := h.logs.linesWith(`"msg":"child not ready in time; stopping it"`); len(lines) == 0 {
		t.Error("no 'not ready in time' log line")
	}
}

func TestWakeEndsBackoff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.BackoffMin = time.Hour
		c.BackoffMax = time.Hour
	})
	h.setMode("nairobi", mode{crashFirst: 1})
	h.createTenant("nairobi")
	h.start()
	waitFor(t, 60*time.Second, "backoff after the first crash", func() bool {
		st, _ := h.status("nairobi")
		return st.State == StateBackoff
	})
	h.sup.Wake(context.Background(), "unknown") // ignored
	h.sup.Wake(context.Background(), "nairobi")
	h.waitInstance("nairobi", true, 0) // long before the >= 30 minute backoff
	if st, _ := h.status("nairobi"); st.Restarts != 1 {
		t.Errorf("Status = %+v, want 1 restart", st)
	}
	if n := len(h.startTimes("nairobi")); n != 2 {
		t.Errorf("%d starts, want 2", n)
	}
}

func TestStaleInstancesAreDeregistered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.createTenant("ghost")
	ctx := context.Background()
	if _, err := h.reg.SetState(ctx, "ghost", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	stale := registry.Instance{ID: testPrefix + "ghost-1234", Tenant: "ghost", Addr: "127.0.0.1:1234", Healthy: true}
	foreign := registry.Instance{ID: "elsewhere-ghost-1", Tenant: "ghost", Addr: "127.0.0.1:1235", Healthy: true}
	for _, in := range []registry.Instance{stale, foreign} {
		if err := h.reg.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	waitFor(t, 60*time.Second, "stale instance deregistered", func() bool {
		for _, in := range h.instances("ghost") {
			if in.ID == stale.ID {
				return false
			}
		}
		return true
	})
	if ins := h.instances("ghost"); len(ins) != 1 || ins[0].ID != foreign.ID {
		t.Errorf("instances of ghost = %v, want only %s (another prefix)", ins, foreign.ID)
	}
}

// Not parallel: it counts goroutines.
func TestCancelRunStopsEverything(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StopGrace = time.Second })
	h.setMode("accra", mode{ignoreTerm: true})
	h.setMode("ghana", mode{crashAlways: true})
	before := runtime.NumGoroutine()
	names := []string{"default", "nairobi", "accra"}
	for _, n := range names {
		h.createTenant(n)
	}
	h.createTenant("ghana")
	h.start()
	var pids []int
	for _, n := range names {
		_, pid := h.waitInstance(n, true, 0)
		pids = append(pids, pid)
	}
	h.stop()

	for i, pid := range pids {
		if alive(pid) {
			t.Errorf("child of %s (pid %d) alive after Run returned", names[i], pid)
		}
	}
	snap, err := h.reg.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 0 {
		t.Errorf("instances left after Run returned: %v", snap.Instances)
	}
	if got := testutil.ToFloat64(h.sup.met.running); got != 0 {
		t.Errorf("%s = %v after Run returned", MetricChildrenRunning, got)
	}
	if st := h.sup.Status(); len(st) != 0 {
		t.Errorf("Status after Run returned = %+v", st)
	}
	waitFor(t, 60*time.Second, "goroutines back to the count before Run", func() bool {
		return runtime.NumGoroutine() <= before
	})
	if err := h.sup.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}
