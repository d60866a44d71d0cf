package registrytest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Custom domains (AddHost, RemoveHost): the same uniqueness rules as
// CreateTenant, through either handle.

func testAddRemoveHost(t *testing.T, e *env) {
	a := e.name("a")
	ta := e.create(e.r, e.tenant(a))
	custom := "Records." + e.suffix + ".Example-School.test." // normalised by the backend
	want := "records." + e.suffix + ".example-school.test"

	got, err := e.r2.AddHost(e.ctx(), a, custom)
	if err != nil {
		t.Fatalf("AddHost: %v", err)
	}
	if !slices.Equal(got.Hosts, []string{ta.PrimaryHost, want}) || got.PrimaryHost != ta.PrimaryHost || got.ID != ta.ID {
		t.Fatalf("AddHost returned %+v", got)
	}
	e.waitFor(e.r, "the added host in a snapshot", func(s registry.Snapshot) bool {
		tn, ok := findTenant(s, a)
		return ok && tn.HasHost(want)
	})
	// Adding it again changes nothing.
	again, err := e.r.AddHost(e.ctx(), a, want)
	if err != nil || !again.Equal(got) {
		t.Errorf("AddHost again: %+v, %v", again, err)
	}

	// Bad input loses nothing.
	for _, bad := range []string{"", "bad host", "10.0.0.1", "[::1]", "a..b"} {
		if _, err := e.r.AddHost(e.ctx(), a, bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("AddHost(%q): error = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := e.r.AddHost(e.ctx(), e.name("nobody"), "x."+want); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("AddHost to an unknown tenant: %v", err)
	}
	if _, err := e.r.RemoveHost(e.ctx(), a, ta.PrimaryHost); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("RemoveHost(primary): error = %v, want ErrInvalid", err)
	}
	if _, err := e.r.RemoveHost(e.ctx(), a, "never."+want); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("RemoveHost(not a host of a): error = %v, want ErrNotFound", err)
	}

	// Removed: gone from snapshots, and free for another tenant.
	removed, err := e.r.RemoveHost(e.ctx(), a, want)
	if err != nil || !slices.Equal(removed.Hosts, []string{ta.PrimaryHost}) {
		t.Fatalf("RemoveHost: %+v, %v", removed, err)
	}
	e.waitFor(e.r2, "the removed host gone from snapshots", func(s registry.Snapshot) bool {
		tn, ok := findTenant(s, a)
		return ok && !tn.HasHost(want)
	})
	b := e.name("b")
	e.create(e.r2, e.tenant(b))
	if _, err := e.r2.AddHost(e.ctx(), b, want); err != nil {
		t.Fatalf("a removed host could not be added to another tenant: %v", err)
	}
}

// testAddHostOfAnotherTenant: a host of tenant A cannot be added to B,
// whether it is A's primary host, a custom domain, or A is deleted (data
// kept, hosts still claimed); B is left unchanged.
func testAddHostOfAnotherTenant(t *testing.T, e *env) {
	a, b := e.name("a"), e.name("b")
	custom := "custom-" + e.suffix + ".registrytest.localhost"
	e.create(e.r, e.tenant(a, host(a), custom))
	tb := e.create(e.r, e.tenant(b))
	for i, r := range []registry.Registry{e.r, e.r2} {
		for _, h := range []string{host(a), custom, "CUSTOM-" + e.suffix + ".registrytest.localhost:443"} {
			_, err := r.AddHost(e.ctx(), b, h)
			var ht *registry.HostTakenError
			if !errors.As(err, &ht) || ht.Owner != a || !errors.Is(err, registry.ErrHostTaken) {
				t.Errorf("handle %d: AddHost(%s, %s): error = %v, want HostTakenError owned by %s", i+1, b, h, err, a)
			}
		}
	}
	// RemoveHost of A's host through B is not found, and A keeps it.
	if _, err := e.r.RemoveHost(e.ctx(), b, custom); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("RemoveHost(%s, A's host): %v, want ErrNotFound", b, err)
	}
	if _, err := e.r.MarkDeleted(e.ctx(), a, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r2.AddHost(e.ctx(), b, custom); !errors.Is(err, registry.ErrHostTaken) {
		t.Errorf("AddHost of a deleted tenant's host: %v, want ErrHostTaken", err)
	}
	if _, err := e.r2.AddHost(e.ctx(), a, "more-"+custom); !errors.Is(err, registry.ErrWrongState) {
		t.Errorf("AddHost to a deleted tenant: %v, want ErrWrongState", err)
	}
	gotA, _ := e.r.Tenant(e.ctx(), a)
	if !gotA.HasHost(custom) {
		t.Errorf("A lost its host: %+v", gotA)
	}
	gotB, err := e.r.Tenant(e.ctx(), b)
	if err != nil || !gotB.Equal(tb) {
		t.Errorf("B changed: %+v, %v (was %+v)", gotB, err, tb)
	}
}

// testAddHostRace: tenants adding one host at once, half through each
// handle: exactly one gets it, the others get HostTakenError naming it.
func testAddHostRace(t *testing.T, e *env) {
	const n = 6
	contested := "addrace-" + e.suffix + ".registrytest.localhost"
	names := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		names[i] = e.name(fmt.Sprintf("r%d", i))
		e.create(e.r, e.tenant(names[i]))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		r := e.r
		if i%2 == 1 {
			r = e.r2
		}
		wg.Go(func() {
			<-start
			_, errs[i] = r.AddHost(e.ctx(), names[i], contested)
		})
	}
	close(start)
	wg.Wait()
	winner := hostRaceWinner(t, names, errs, contested)
	s := e.waitFor(e.r, "the winner's host", func(s registry.Snapshot) bool {
		tn, ok := findTenant(s, winner)
		return ok && tn.HasHost(contested)
	})
	for _, tn := range e.ours(s.Tenants) {
		if tn.Name != winner && tn.HasHost(contested) {
			t.Errorf("%s also holds %s", tn.Name, contested)
		}
	}
}

// testHostNesting (issue 25): a school cannot claim a host equal to,
// under or above another school's host, nor a single-label name, through
// CreateTenant or AddHost; a school may nest names under its own hosts;
// a development apex (x.localhost) nests with no other school's name, in
// either order, as in campus dev's school.localhost /
// nairobi.school.localhost.
func testHostNesting(t *testing.T, e *env) {
	a, b := e.name("a"), e.name("b")
	custom := "www.n" + e.suffix + ".test"
	apex := "apex" + e.suffix + ".localhost"
	e.create(e.r, e.tenant(a, host(a), custom, apex))
	e.create(e.r, e.tenant(b))
	e.cleanupTenant(e.name("c")) // in case a refused create is accepted

	refused := []struct{ host, why string }{
		{"x." + custom, "under A's custom domain"},
		{"a.b." + custom, "two labels under A's custom domain"},
		{"n" + e.suffix + ".test", "above A's custom domain"},
	}
	for _, c := range refused {
		if _, err := e.r2.AddHost(e.ctx(), b, c.host); !errors.Is(err, registry.ErrHostTaken) {
			t.Errorf("B adds %s (%s): %v, want ErrHostTaken", c.host, c.why, err)
		}
		if _, err := e.r2.CreateTenant(e.ctx(), e.tenant(e.name("c"), c.host)); !errors.Is(err, registry.ErrHostTaken) {
			t.Errorf("C created with %s (%s): %v, want ErrHostTaken", c.host, c.why, err)
		}
	}
	for _, single := range []string{"localhost", "LocalHost.", "intranet"} {
		if _, err := e.r2.AddHost(e.ctx(), b, single); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("B adds single-label %s: %v, want ErrInvalid", single, err)
		}
	}
	if got, err := e.r.Tenant(e.ctx(), b); err != nil || len(got.Hosts) != 1 {
		t.Errorf("B after refused claims: %+v, %v; want its one host", got, err)
	}

	// Allowed: A nests under its own hosts; B takes a name under A's
	// development apex (but A then nothing under B's); a new apex above
	// another school's name.
	if _, err := e.r2.AddHost(e.ctx(), a, "x."+custom); err != nil {
		t.Errorf("A adds a name under its own host: %v", err)
	}
	child := "kid." + apex
	if _, err := e.r2.AddHost(e.ctx(), b, child); err != nil {
		t.Errorf("B adds %s (under a development apex): %v", child, err)
	}
	if _, err := e.r.AddHost(e.ctx(), a, "deeper."+child); !errors.Is(err, registry.ErrHostTaken) {
		t.Errorf("A adds a name under B's %s: %v, want ErrHostTaken", child, err)
	}
	apex2 := "apex2" + e.suffix + ".localhost"
	if _, err := e.r.AddHost(e.ctx(), b, "kid."+apex2); err != nil {
		t.Fatalf("B adds kid.%s: %v", apex2, err)
	}
	if _, err := e.r2.AddHost(e.ctx(), a, apex2); err != nil {
		t.Errorf("A adds the apex %s above B's name: %v", apex2, err)
	}
}
