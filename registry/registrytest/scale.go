package registrytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero (issue 12): the idle-timeout override and the wake signal.

func testIdleTimeout(t *testing.T, e *env) {
	name := e.name("idle")
	tn := e.tenant(name)
	tn.IdleTimeout = "10m0s"
	created := e.create(e.r, tn)
	if created.IdleTimeout != "10m0s" {
		t.Fatalf("CreateTenant kept idle timeout %q, want 10m0s", created.IdleTimeout)
	}
	for _, c := range []struct{ in, want string }{
		{"0", "0s"}, {"never", "0s"}, {"90s", "1m30s"}, {"", ""}, {"15m", "15m0s"},
	} {
		got, err := e.r.SetIdleTimeout(e.ctx(), name, c.in)
		if err != nil || got.IdleTimeout != c.want {
			t.Fatalf("SetIdleTimeout(%q) = %q, %v; want %q", c.in, got.IdleTimeout, err, c.want)
		}
		want := created
		want.IdleTimeout = c.want
		if !got.Equal(want) {
			t.Fatalf("SetIdleTimeout changed more than the idle timeout:\n %+v\nwant\n %+v", got, want)
		}
		read, err := e.r2.Tenant(e.ctx(), name)
		if err != nil || read.IdleTimeout != c.want {
			t.Fatalf("second handle reads idle timeout %q, %v; want %q", read.IdleTimeout, err, c.want)
		}
	}
	e.waitFor(e.r2, "the idle timeout in a snapshot", func(s registry.Snapshot) bool {
		for _, tn := range s.Tenants {
			if tn.Name == name {
				return tn.IdleTimeout == "15m0s"
			}
		}
		return false
	})
	for _, bad := range []string{"soon", "-5m", "10ms"} {
		if _, err := e.r.SetIdleTimeout(e.ctx(), name, bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("SetIdleTimeout(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if read, _ := e.r.Tenant(e.ctx(), name); read.IdleTimeout != "15m0s" {
		t.Errorf("a refused SetIdleTimeout changed it to %q", read.IdleTimeout)
	}
	if _, err := e.r.SetIdleTimeout(e.ctx(), e.name("missing"), "5m"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetIdleTimeout(missing) = %v, want ErrNotFound", err)
	}
	bad := e.tenant(e.name("idlebad"))
	bad.IdleTimeout = "5 minutes"
	if _, err := e.r.CreateTenant(e.ctx(), bad); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("CreateTenant with idle timeout %q = %v, want ErrInvalid", bad.IdleTimeout, err)
	}
}

func testWakes(t *testing.T, e *env) {
	a, b := e.name("wakea"), e.name("wakeb")
	e.create(e.r, e.tenant(a))
	e.create(e.r, e.tenant(b))
	snap, err := e.r.Snapshot(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	// Old wakes are not replayed to a new watcher.
	if err := e.r2.RequestWake(e.ctx(), a); err != nil {
		t.Fatal(err)
	}
	wakes, cursor, err := e.r.WatchWakes(e.ctx(), 0)
	if err != nil || len(wakes) != 0 || cursor == 0 {
		t.Fatalf("WatchWakes(0) = %v, %d, %v; want no wakes and a cursor", wakes, cursor, err)
	}

	type result struct {
		wakes  []registry.Wake
		cursor uint64
		err    error
	}
	ch := make(chan result, 1)
	go func() {
		w, c, err := e.r.WatchWakes(e.ctx(), cursor)
		ch <- result{w, c, err}
	}()
	select {
	case res := <-ch:
		t.Fatalf("WatchWakes returned %+v before any new wake", res)
	case <-time.After(100 * time.Millisecond):
	}
	if err := e.r2.RequestWake(e.ctx(), b); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-ch:
	case <-time.After(e.h.WakeBound):
		t.Fatalf("WatchWakes did not see a wake within %v", e.h.WakeBound)
	}
	if res.err != nil || len(res.wakes) != 1 || res.wakes[0].Tenant != b || res.cursor <= cursor {
		t.Fatalf("WatchWakes = %+v (cursor %d before); want one wake of %s and a larger cursor", res, cursor, b)
	}
	// A wake is not a registry change: the snapshot version stays.
	if now, err := e.r.Snapshot(e.ctx()); err != nil || now.Version != snap.Version {
		t.Errorf("snapshot version after wakes = %d, %v; want %d", now.Version, err, snap.Version)
	}
	// Several wakes before a watcher looks: each tenant once.
	for _, n := range []string{a, b, a} {
		if err := e.r2.RequestWake(e.ctx(), n); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	next := res.cursor
	for len(seen) < 2 {
		w, c, err := e.r.WatchWakes(e.ctx(), next)
		if err != nil {
			t.Fatalf("WatchWakes: %v (seen %v)", err, seen)
		}
		for _, wk := range w {
			seen[wk.Tenant] = true
		}
		next = c
	}
	if err := e.r.RequestWake(e.ctx(), "Not A Name"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("RequestWake(bad name) = %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := e.r.WatchWakes(ctx, next); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WatchWakes after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(e.h.WakeBound):
		t.Errorf("WatchWakes still blocked %v after cancel", e.h.WakeBound)
	}
}
