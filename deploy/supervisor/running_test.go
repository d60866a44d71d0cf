//go:build unix

package supervisor

import (
	"context"
	"testing"
	"time"
)

// Memory budget (issue 20), per machine: running.go.

// With room for two, a wake of a third tenant stops the least recently
// used running one (never one with a request in flight, never one that
// may not idle), and the evicted tenant wakes again later.
func TestMaxRunningEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Hour // eviction, not idleness, stops them
		c.Activity = act
		c.StartIdle = true
		c.MaxRunning = 2
	})
	ctx := context.Background()
	for _, n := range []string{"accra", "lagos", "kumasi"} {
		h.createTenant(n)
	}
	h.start()
	h.sup.Wake(ctx, "accra")
	_, accra := h.waitInstance("accra", true, 0)
	h.sup.Wake(ctx, "lagos")
	_, lagos := h.waitInstance("lagos", true, 0)
	act.set("accra", 0, time.Now().Add(-time.Minute)) // least recently used
	act.set("lagos", 0, time.Now())

	h.sup.Wake(ctx, "kumasi")
	_, kumasi := h.waitInstance("kumasi", true, 0)
	h.waitState("accra", StateIdle)
	waitFor(t, 20*time.Second, "accra's process to exit", func() bool { return !alive(accra) })
	if _, pid := h.waitInstance("lagos", true, 0); pid != lagos {
		t.Errorf("lagos (used recently) was replaced: %d → %d", lagos, pid)
	}
	if n := counter(t, h.sup.met.evictions); n != 1 {
		t.Errorf("evictions = %v, want 1", n)
	}

	// A request in flight protects a tenant however old its last one:
	// lagos is busy, kumasi is the one to go.
	act.set("lagos", 1, time.Now().Add(-time.Hour))
	act.set("kumasi", 0, time.Now())
	h.sup.Wake(ctx, "accra")
	h.waitInstance("accra", true, accra)
	h.waitState("kumasi", StateIdle)
	if !alive(lagos) {
		t.Error("lagos was stopped with a request in flight")
	}
	if _, pid := h.waitInstance("lagos", true, 0); pid != lagos {
		t.Errorf("lagos was replaced: %d → %d", lagos, pid)
	}
	waitFor(t, 20*time.Second, "kumasi's process to exit", func() bool { return !alive(kumasi) })
	if n := counter(t, h.sup.met.evictions); n != 2 {
		t.Errorf("evictions = %v, want 2", n)
	}
	if running := runningChildren(h); running > 2 {
		t.Errorf("%d children running, cap 2", running)
	}
}

// With no tenant that may be stopped, a woken start waits (its requests
// get the proxy's 503 after the hold timeout) and starts once room is
// left; starts nobody waits for never evict.
func TestMaxRunningNeverEvictsPinnedOrBusy(t *testing.T) {
	t.Parallel()
	act := newActivity()
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Hour
		c.Activity = act
		c.MaxRunning = 1
	})
	ctx := context.Background()
	pinned := h.createTenant("pinned")
	if _, err := h.reg.SetIdleTimeout(ctx, pinned.Name, "0"); err != nil {
		t.Fatal(err)
	}
	h.start()
	_, pid := h.waitInstance("pinned", true, 0)
	// Created later, "late" is not woken: it waits idle, evicting nobody.
	h.createTenant("late")
	h.waitState("late", StateIdle)
	// Woken, it still evicts nobody: pinned never idles.
	h.sup.Wake(ctx, "late")
	waitFor(t, 10*time.Second, "a start waiting over the cap", func() bool { return counter(t, h.sup.met.startsOverCap) == 1 })
	time.Sleep(500 * time.Millisecond) // time for a wrong eviction to show
	if st, _ := h.status("late"); st.PID != 0 {
		t.Errorf("late runs (%+v) beyond the cap", st)
	}
	if !alive(pid) || counter(t, h.sup.met.evictions) != 0 {
		t.Errorf("pinned stopped for the cap (alive %v, evictions %v)", alive(pid), counter(t, h.sup.met.evictions))
	}
	// Room left (pinned suspended): late starts.
	if _, err := h.reg.SetState(ctx, "pinned", "suspended"); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("late", true, 0)
}

// runningChildren counts the slots with a process.
func runningChildren(h *harness) int {
	n := 0
	for _, st := range h.sup.Status() {
		if st.PID != 0 {
			n++
		}
	}
	return n
}
