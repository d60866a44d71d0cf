//go:build unix

package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/campus-saas/campus/app"
)

// The header the campus app sets is the one the supervisor reads.
func TestBusyHeaderIsTheApps(t *testing.T) {
	if BusyHeader != app.BusyHeader {
		t.Fatalf("supervisor reads %q, the app sets %q", BusyHeader, app.BusyHeader)
	}
}

// busyFile returns a file whose existence makes a child's /healthz say
// busy (envBusyFile), created.
func busyFile(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "busy")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// A busy tenant (an import running in its app) outlives idle timeouts
// shorter than its work, while another tenant's idle stop still happens
// meanwhile (cross-tenant: one school's import neither keeps nor stops
// another); once the work ends, its idle timeout counts from then.
func TestBusyTenantIsNotStoppedIdle(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Second
		c.Activity = act
	})
	busy := busyFile(t)
	h.setMode("accra", mode{busyFile: busy})
	h.createTenant("accra")
	h.createTenant("lagos")
	h.start()
	_, accra := h.waitInstance("accra", true, 0)
	waitFor(t, 20*time.Second, "accra seen busy", func() bool {
		return len(h.logs.linesWith(`"tenant":"accra"`, "tenant busy")) > 0
	})

	h.waitState("lagos", StateIdle) // idle while accra works
	time.Sleep(2 * time.Second)     // two more of accra's idle timeouts
	if st, _ := h.status("accra"); st.State != StateReady || st.PID != accra {
		t.Fatalf("busy accra: %+v, want ready with pid %d", st, accra)
	}
	if n := counter(t, h.sup.met.idleStops); n != 1 {
		t.Errorf("idle stops = %v, want 1 (lagos only)", n)
	}

	if err := os.Remove(busy); err != nil { // the import ends
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "accra seen no longer busy", func() bool {
		return len(h.logs.linesWith(`"tenant":"accra"`, "tenant no longer busy")) > 0
	})
	ended := time.Now()
	h.waitState("accra", StateIdle)
	if d := time.Since(ended); d < 500*time.Millisecond {
		t.Errorf("accra stopped %v after its work ended: its idle timeout (1s) should count from then", d)
	}
	waitFor(t, 20*time.Second, "accra's process to exit", func() bool { return !alive(accra) })
}

// The busy protection is bounded: an app that says busy for ever is
// stopped once idle past BusyLimit, with a warning.
func TestBusyLimitBoundsIt(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = 500 * time.Millisecond
		c.BusyLimit = 2 * time.Second
		c.Activity = act
	})
	h.setMode("accra", mode{busyFile: busyFile(t)})
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)
	began := time.Now()
	h.waitState("accra", StateIdle)
	if d := time.Since(began); d < 2*time.Second {
		t.Errorf("busy accra stopped after %v, before the busy limit (2s)", d)
	}
	if len(h.logs.linesWith(`"tenant":"accra"`, "busy for longer than the busy limit")) == 0 {
		t.Error("no warning about the busy limit")
	}
	waitFor(t, 20*time.Second, "accra's process to exit", func() bool { return !alive(pid) })
}

// The running cap never evicts a busy tenant, even the least recently
// used one: the waking tenant takes another's room.
func TestMaxRunningSkipsBusy(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Hour
		c.Activity = act
		c.StartIdle = true
		c.MaxRunning = 2
	})
	ctx := context.Background()
	h.setMode("accra", mode{busyFile: busyFile(t)})
	for _, n := range []string{"accra", "lagos", "kumasi"} {
		h.createTenant(n)
	}
	h.start()
	h.sup.Wake(ctx, "accra")
	_, accra := h.waitInstance("accra", true, 0)
	h.sup.Wake(ctx, "lagos")
	_, lagos := h.waitInstance("lagos", true, 0)
	waitFor(t, 20*time.Second, "accra seen busy", func() bool {
		return len(h.logs.linesWith(`"tenant":"accra"`, "tenant busy")) > 0
	})
	act.set("accra", 0, time.Now().Add(-time.Hour)) // least recently used, but busy
	act.set("lagos", 0, time.Now().Add(-time.Minute))

	h.sup.Wake(ctx, "kumasi")
	h.waitInstance("kumasi", true, 0)
	h.waitState("lagos", StateIdle)
	waitFor(t, 20*time.Second, "lagos's process to exit", func() bool { return !alive(lagos) })
	if st, _ := h.status("accra"); st.State != StateReady || st.PID != accra {
		t.Errorf("busy accra: %+v, want ready with pid %d", st, accra)
	}
	if n := counter(t, h.sup.met.evictions); n != 1 {
		t.Errorf("evictions = %v, want 1", n)
	}
}
