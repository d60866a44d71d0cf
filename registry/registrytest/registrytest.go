// Package registrytest is the contract every registry.Registry backend
// passes. A backend's test calls Run with a Harness that opens handles on
// it:
//
//	func TestContract(t *testing.T) {
//		registrytest.Run(t, registrytest.Harness{
//			New: func(t *testing.T) registry.Registry {
//				r, err := embedded.Open(t.TempDir())
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { r.Close() })
//				return r
//			},
//		})
//	}
//
// The suite runs unchanged against shared, long-lived backends (a real
// Consul agent): every subtest uses tenant names, hosts and instance IDs
// with a random suffix, never assumes the registry is empty, compares
// only what it created, and deletes what it created.
//
// Health is decided per backend (the embedded one trusts
// Instance.Healthy; Consul checks http://<addr>/readyz), so every instance
// the suite registers is backed by an httptest server on 127.0.0.1 whose
// /readyz agrees with the Healthy flag, and health is only ever asserted
// eventually, through Watch.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Harness opens handles on the backend under test. The harness owns what
// it opens: it closes handles (and stops servers) with t.Cleanup; the
// suite never calls Close.
type Harness struct {
	// New returns a handle on the backend. Required. It is called once per
	// subtest; handles may share state with earlier ones (the suite does
	// not assume an empty registry).
	New func(t *testing.T) registry.Registry
	// Second returns another handle on the same backend as first, as
	// another process would see it (for the embedded backend, a second
	// Open of the same directory). Writes through it must wake Watch on
	// first. Nil means the suite uses first itself.
	Second func(t *testing.T, first registry.Registry) registry.Registry
	// Timeout bounds each wait for a change to become visible, health
	// checks included. Zero means 20s.
	Timeout time.Duration
	// WakeBound is the longest a Watch may take to notice a write made
	// through Second. It is a sanity bound, not a performance target (the
	// suite logs the measured latency). Zero means 5s.
	WakeBound time.Duration
}

// Run runs the whole contract as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("registrytest: Harness.New is required")
	}
	if h.Timeout == 0 {
		h.Timeout = 20 * time.Second
	}
	if h.WakeBound == 0 {
		h.WakeBound = 5 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"TenantRoundTrip", testTenantRoundTrip},
		{"CreateGetList", testCreateGetList},
		{"CreateInvalid", testCreateInvalid},
		{"CreateDuplicateName", testCreateDuplicateName},
		{"HostTaken", testHostTaken},
		{"HostRace", testHostRace},
		{"SetState", testSetState},
		{"DeleteTenant", testDeleteTenant},
		{"TenantID", testTenantID},
		{"SoftDeleteAndRestore", testSoftDeleteAndRestore},
		{"PurgeTenant", testPurgeTenant},
		{"CreatingState", testCreatingState},
		{"Instances", testInstances},
		{"Health", testHealth},
		{"SecondHandleSeesWrites", testSecondHandleSeesWrites},
		{"WatchZero", testWatchZero},
		{"WatchBlocksThenWakes", testWatchBlocksThenWakes},
		{"WatchCancel", testWatchCancel},
		{"VersionGrows", testVersionGrows},
		{"SnapshotSorted", testSnapshotSorted},
		{"SnapshotImmutable", testSnapshotImmutable},
		// Custom domains (hosts.go).
		{"AddRemoveHost", testAddRemoveHost},
		{"AddHostOfAnotherTenant", testAddHostOfAnotherTenant},
		{"AddHostRace", testAddHostRace},
		{"HostNesting", testHostNesting},
		// Scale to zero (issue 12): scale.go
		{"IdleTimeout", testIdleTimeout},
		{"Wakes", testWakes},
		// Memory budget (issue 20): budget.go
		{"Memory", testMemory},
		// Operator tokens and the audit trail (issue 26): operators.go
		{"OperatorTokens", testOperatorTokens},
		{"OperatorTokenRace", testOperatorTokenRace},
		{"Audit", testAudit},
		{"AuditPrune", testAuditPrune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newEnv(t, h))
		})
	}
}

// env is one subtest's view: two handles, a random suffix and cleanup.
type env struct {
	t       *testing.T
	h       Harness
	r, r2   registry.Registry
	suffix  string
	counter atomic.Int64
}

func newEnv(t *testing.T, h Harness) *env {
	e := &env{t: t, h: h}
	e.r = h.New(t)
	e.r2 = e.r
	if h.Second != nil {
		e.r2 = h.Second(t, e.r)
	}
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	e.suffix = hex.EncodeToString(b)
	return e
}

// ctx is a context bounded by the harness timeout.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e.h.Timeout)
	e.t.Cleanup(cancel)
	return ctx
}

// name returns a unique tenant name "rt<suffix>-<tag>", so that names of
// one subtest sort by tag.
func (e *env) name(tag string) string { return "rt" + e.suffix + "-" + tag }

// host returns a unique host for a tenant name.
func host(name string) string { return name + ".registrytest.localhost" }

// instanceID returns a unique instance ID.
func (e *env) instanceID(tag string) string { return "rt" + e.suffix + "-" + tag }

// tenant builds a valid tenant with NewTenant.
func (e *env) tenant(name string, hosts ...string) registry.Tenant {
	e.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{host(name)}
	}
	tn, err := registry.NewTenant(name, hosts, "")
	if err != nil {
		e.t.Fatalf("NewTenant(%q, %q): %v", name, hosts, err)
	}
	return tn
}

// cleanupTenant deletes name when the subtest ends, if it still exists.
func (e *env) cleanupTenant(name string) {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.r.DeleteTenant(ctx, name); err != nil && !errors.Is(err, registry.ErrNotFound) {
			e.t.Errorf("cleanup: delete tenant %s: %v", name, err)
		}
	})
}

// create stores a tenant through r and schedules its deletion.
func (e *env) create(r registry.Registry, tn registry.Tenant) registry.Tenant {
	e.t.Helper()
	e.cleanupTenant(tn.Name)
	got, err := r.CreateTenant(e.ctx(), tn)
	if err != nil {
		e.t.Fatalf("CreateTenant(%s): %v", tn.Name, err)
	}
	return got
}

// readyz is an instance's health endpoint: /readyz answers 200 while
// healthy and 503 otherwise.
type readyz struct {
	srv     *httptest.Server
	healthy atomic.Bool
}

func (e *env) readyz(healthy bool) *readyz {
	rz := &readyz{}
	rz.healthy.Store(healthy)
	rz.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !rz.healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	e.t.Cleanup(rz.srv.Close)
	return rz
}

func (rz *readyz) addr() string { return rz.srv.Listener.Addr().String() }

// register starts a /readyz server agreeing with healthy and registers an
// instance at its address through r; it deregisters it at the end.
func (e *env) register(r registry.Registry, id, tenant string, healthy bool) (registry.Instance, *readyz) {
	e.t.Helper()
	rz := e.readyz(healthy)
	in := registry.Instance{ID: id, Tenant: tenant, Addr: rz.addr(), Healthy: healthy}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.r.DeregisterInstance(ctx, id); err != nil {
			e.t.Errorf("cleanup: deregister %s: %v", id, err)
		}
	})
	if err := r.RegisterInstance(e.ctx(), in); err != nil {
		e.t.Fatalf("RegisterInstance(%+v): %v", in, err)
	}
	return in, rz
}

// waitFor returns the first snapshot of r satisfying cond, waiting through
// Watch for at most the harness timeout.
func (e *env) waitFor(r registry.Registry, what string, cond func(registry.Snapshot) bool) registry.Snapshot {
	e.t.Helper()
	ctx := e.ctx()
	snap, err := r.Snapshot(ctx)
	if err != nil {
		e.t.Fatalf("Snapshot: %v", err)
	}
	for !cond(snap) {
		next, err := r.Watch(ctx, snap.Version)
		if err != nil {
			e.t.Fatalf("waiting for %s: Watch(%d): %v (last snapshot: %s)", what, snap.Version, err, e.describe(snap))
		}
		if next.Version <= snap.Version {
			e.t.Fatalf("Watch(%d) returned version %d, want a greater one", snap.Version, next.Version)
		}
		snap = next
	}
	return snap
}

// describe prints the part of a snapshot that belongs to this subtest.
func (e *env) describe(s registry.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version %d;", s.Version)
	for _, t := range s.Tenants {
		if strings.HasPrefix(t.Name, "rt"+e.suffix) {
			fmt.Fprintf(&b, " tenant %s %s %v;", t.Name, t.State, t.Hosts)
		}
	}
	for _, in := range s.Instances {
		if strings.HasPrefix(in.ID, "rt"+e.suffix) {
			fmt.Fprintf(&b, " instance %s/%s %s healthy=%v;", in.Tenant, in.ID, in.Addr, in.Healthy)
		}
	}
	return b.String()
}

// ours keeps the tenants of this subtest, in order.
func (e *env) ours(ts []registry.Tenant) []registry.Tenant {
	var out []registry.Tenant
	for _, t := range ts {
		if strings.HasPrefix(t.Name, "rt"+e.suffix) {
			out = append(out, t)
		}
	}
	return out
}

func findTenant(s registry.Snapshot, name string) (registry.Tenant, bool) {
	for _, t := range s.Tenants {
		if t.Name == name {
			return t, true
		}
	}
	return registry.Tenant{}, false
}

func findInstance(s registry.Snapshot, id string) (registry.Instance, bool) {
	for _, in := range s.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return registry.Instance{}, false
}

// equalTenant compares every field; times with Equal.
func equalTenant(a, b registry.Tenant) bool { return a.Equal(b) }

func testTenantRoundTrip(t *testing.T, e *env) {
	name := e.name("roundtrip")
	in, err := registry.NewTenant(name, []string{strings.ToUpper(host(name)) + ":8000", "www." + host(name) + ".", host(name)}, " Round Trip School ")
	if err != nil {
		t.Fatalf("NewTenant: %v", err)
	}
	if want := []string{host(name), "www." + host(name)}; !slices.Equal(in.Hosts, want) || in.PrimaryHost != host(name) {
		t.Fatalf("NewTenant hosts = %q primary %q, want %q primary %q", in.Hosts, in.PrimaryHost, want, host(name))
	}

	before := time.Now()
	created := e.create(e.r, in)
	after := time.Now()
	if created.CreatedAt.Before(before.Add(-time.Minute)) || created.CreatedAt.After(after.Add(time.Minute)) {
		t.Errorf("CreatedAt = %v, want about %v (set by the backend when zero)", created.CreatedAt, before)
	}
	want := in
	want.CreatedAt = created.CreatedAt
	if !equalTenant(created, want) {
		t.Errorf("CreateTenant returned\n %+v\nwant\n %+v", created, want)
	}
	for _, r := range []registry.Registry{e.r, e.r2} {
		got, err := r.Tenant(e.ctx(), name)
		if err != nil {
			t.Fatalf("Tenant(%s): %v", name, err)
		}
		if !equalTenant(got, created) {
			t.Errorf("Tenant(%s) =\n %+v\nwant\n %+v", name, got, created)
		}
	}

	// An explicit CreatedAt is kept, to the nanosecond.
	name2 := e.name("roundtrip2")
	in2 := e.tenant(name2)
	in2.CreatedAt = time.Date(2024, 9, 2, 7, 30, 0, 123456789, time.UTC)
	in2.State = registry.StateSuspended
	in2.DisplayName = "Ünïcode Académie"
	created2 := e.create(e.r, in2)
	got2, err := e.r.Tenant(e.ctx(), name2)
	if err != nil {
		t.Fatalf("Tenant(%s): %v", name2, err)
	}
	if !equalTenant(created2, in2) || !equalTenant(got2, in2) {
		t.Errorf("explicit fields not kept:\n created %+v\n read    %+v\n want    %+v", created2, got2, in2)
	}

	if _, err := e.r.Tenant(e.ctx(), e.name("missing")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Tenant(missing) error = %v, want ErrNotFound", err)
	}
}

func testCreateGetList(t *testing.T, e *env) {
	var want []registry.Tenant
	for _, tag := range []string{"m", "c", "x", "a"} {
		want = append(want, e.create(e.r, e.tenant(e.name(tag))))
	}
	slices.SortFunc(want, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })

	for i, r := range []registry.Registry{e.r, e.r2} {
		all, err := r.Tenants(e.ctx())
		if err != nil {
			t.Fatalf("Tenants: %v", err)
		}
		if !slices.IsSortedFunc(all, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("handle %d: Tenants() not sorted by name", i+1)
		}
		got := e.ours(all)
		if len(got) != len(want) {
			t.Fatalf("handle %d: Tenants() has %d of ours, want %d: %+v", i+1, len(got), len(want), got)
		}
		for j := range want {
			if !equalTenant(got[j], want[j]) {
				t.Errorf("handle %d: Tenants()[%d] =\n %+v\nwant\n %+v", i+1, j, got[j], want[j])
			}
			one, err := r.Tenant(e.ctx(), want[j].Name)
			if err != nil || !equalTenant(one, want[j]) {
				t.Errorf("handle %d: Tenant(%s) = %+v, %v", i+1, want[j].Name, one, err)
			}
		}
	}
}

func testCreateInvalid(t *testing.T, e *env) {
	good := func(tag string) registry.Tenant { return e.tenant(e.name(tag)) }
	tests := []struct {
		name   string
		tenant registry.Tenant
	}{
		{"zero", registry.Tenant{}},
		{"bad name", func() registry.Tenant { tn := good("bad"); tn.Name = "Bad Name"; return tn }()},
		{"reserved name", func() registry.Tenant {
			tn := good("reserved")
			tn.Name, tn.Database = "admin", "admin"
			return tn
		}()},
		{"no hosts", func() registry.Tenant { tn := good("nohosts"); tn.Hosts = nil; return tn }()},
		{"host not normalised", func() registry.Tenant {
			tn := good("upper")
			tn.Hosts = []string{strings.ToUpper(tn.Hosts[0])}
			tn.PrimaryHost = tn.Hosts[0]
			return tn
		}()},
		{"ip host", func() registry.Tenant {
			tn := good("ip")
			tn.Hosts = append(tn.Hosts, "127.0.0.1")
			return tn
		}()},
		{"primary not a host", func() registry.Tenant { tn := good("primary"); tn.PrimaryHost = "elsewhere.example"; return tn }()},
		{"bad state", func() registry.Tenant { tn := good("state"); tn.State = "deleted"; return tn }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.tenant.Name, "rt"+e.suffix) {
				e.cleanupTenant(tt.tenant.Name)
			}
			_, err := e.r.CreateTenant(e.ctx(), tt.tenant)
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("CreateTenant(%+v) error = %v, want ErrInvalid", tt.tenant, err)
			}
			if tt.tenant.Name == "" || registry.ValidateName(tt.tenant.Name) != nil {
				return
			}
			if _, err := e.r.Tenant(e.ctx(), tt.tenant.Name); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("invalid tenant was stored: Tenant(%s) error = %v", tt.tenant.Name, err)
			}
		})
	}
	// Nothing of an invalid tenant was claimed: its valid host is still free.
	e.create(e.r, e.tenant(e.name("free"), host(e.name("ip"))))
}

func testCreateDuplicateName(t *testing.T, e *env) {
	name := e.name("dup")
	first := e.create(e.r, e.tenant(name))

	again := e.tenant(name, "other-"+host(name))
	for i, r := range []registry.Registry{e.r, e.r2} {
		if _, err := r.CreateTenant(e.ctx(), again); !errors.Is(err, registry.ErrExists) {
			t.Fatalf("handle %d: second CreateTenant(%s) error = %v, want ErrExists", i+1, name, err)
		}
	}
	got, err := e.r.Tenant(e.ctx(), name)
	if err != nil || !equalTenant(got, first) {
		t.Fatalf("after a failed duplicate create, Tenant(%s) = %+v, %v; want the first %+v", name, got, err, first)
	}
	// The duplicate's host was not claimed.
	e.create(e.r, e.tenant(e.name("dup2"), "other-"+host(name)))
}

func testHostTaken(t *testing.T, e *env) {
	owner := e.name("owner")
	shared := "shared." + host(owner)
	e.create(e.r, e.tenant(owner, host(owner), shared))

	thief := e.name("thief")
	e.cleanupTenant(thief)
	for i, r := range []registry.Registry{e.r, e.r2} {
		_, err := r.CreateTenant(e.ctx(), e.tenant(thief, host(thief), shared))
		var ht *registry.HostTakenError
		if !errors.As(err, &ht) {
			t.Fatalf("handle %d: CreateTenant claiming %s: error = %v, want *HostTakenError", i+1, shared, err)
		}
		if ht.Host != shared || ht.Owner != owner {
			t.Errorf("handle %d: HostTakenError = %+v, want host %s owner %s", i+1, ht, shared, owner)
		}
		if !errors.Is(err, registry.ErrHostTaken) {
			t.Errorf("handle %d: errors.Is(%v, ErrHostTaken) = false", i+1, err)
		}
	}
	if _, err := e.r.Tenant(e.ctx(), thief); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("tenant with a taken host was stored: Tenant(%s) error = %v", thief, err)
	}
	// The failed create claimed none of its hosts.
	e.create(e.r2, e.tenant(e.name("other"), host(thief)))
}

func testHostRace(t *testing.T, e *env) {
	const n = 8
	contested := "race-" + e.suffix + ".registrytest.localhost"
	names := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		names[i] = e.name(fmt.Sprintf("race%d", i))
		e.cleanupTenant(names[i])
		tn := e.tenant(names[i], host(names[i]), contested)
		r := e.r
		if i%2 == 1 {
			r = e.r2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = r.CreateTenant(e.ctx(), tn)
		}()
	}
	close(start)
	wg.Wait()

	winner := hostRaceWinner(t, names, errs, contested)
	for i, err := range errs {
		if err == nil {
			continue
		}
		if _, err := e.r.Tenant(e.ctx(), names[i]); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("loser %s was stored (Tenant error = %v)", names[i], err)
		}
	}
	got, err := e.r.Tenant(e.ctx(), winner)
	if err != nil || !got.HasHost(contested) {
		t.Fatalf("winner %s: %+v, %v", winner, got, err)
	}
}

func testSetState(t *testing.T, e *env) {
	name := e.name("state")
	created := e.create(e.r, e.tenant(name))

	for _, st := range []registry.State{registry.StateSuspended, registry.StateActive, registry.StateSuspended} {
		got, err := e.r.SetState(e.ctx(), name, st)
		if err != nil {
			t.Fatalf("SetState(%s, %s): %v", name, st, err)
		}
		want := created
		want.State = st
		if !equalTenant(got, want) {
			t.Fatalf("SetState returned\n %+v\nwant\n %+v", got, want)
		}
		read, err := e.r2.Tenant(e.ctx(), name)
		if err != nil || !equalTenant(read, want) {
			t.Fatalf("after SetState(%s), second handle reads %+v, %v", st, read, err)
		}
	}
	if _, err := e.r.SetState(e.ctx(), e.name("missing"), registry.StateActive); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetState(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := e.r.SetState(e.ctx(), name, "deleted"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("SetState(%s, deleted) error = %v, want ErrInvalid", name, err)
	}
}

func testDeleteTenant(t *testing.T, e *env) {
	name := e.name("gone")
	www := "www." + host(name)
	e.create(e.r, e.tenant(name, host(name), www))
	id := e.instanceID("gone-1")
	e.register(e.r, id, name, true)

	if err := e.r2.DeleteTenant(e.ctx(), name); err != nil {
		t.Fatalf("DeleteTenant(%s): %v", name, err)
	}
	for i, r := range []registry.Registry{e.r, e.r2} {
		if _, err := r.Tenant(e.ctx(), name); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("handle %d: Tenant(%s) after delete: error = %v, want ErrNotFound", i+1, name, err)
		}
		all, err := r.Tenants(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if got := e.ours(all); len(got) != 0 {
			t.Errorf("handle %d: Tenants() still lists %+v", i+1, got)
		}
	}
	e.waitFor(e.r, "deleted tenant gone from the snapshot, its instance kept", func(s registry.Snapshot) bool {
		_, tenant := findTenant(s, name)
		_, inst := findInstance(s, id)
		return !tenant && inst
	})
	if err := e.r.DeleteTenant(e.ctx(), name); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second DeleteTenant(%s) error = %v, want ErrNotFound", name, err)
	}

	// Its hosts are free again, for another tenant, and its name (with a
	// host that does not nest with the heir's: CheckHostClaim).
	e.create(e.r, e.tenant(e.name("heir"), host(name), www))
	e.create(e.r2, e.tenant(name, "again-"+host(name)))
}

func testInstances(t *testing.T, e *env) {
	name := e.name("inst")
	e.create(e.r, e.tenant(name))
	id := e.instanceID("inst-1")
	first, _ := e.register(e.r, id, name, true)

	e.waitFor(e.r2, "registered instance", func(s registry.Snapshot) bool {
		in, ok := findInstance(s, id)
		return ok && in.Tenant == name && in.Addr == first.Addr
	})

	// Re-registering the same ID replaces the instance.
	moved, _ := e.register(e.r2, id, name, true)
	snap := e.waitFor(e.r, "re-registered instance at its new address", func(s registry.Snapshot) bool {
		in, ok := findInstance(s, id)
		return ok && in.Addr == moved.Addr
	})
	count := 0
	for _, in := range snap.Instances {
		if in.ID == id {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("instance %s appears %d times after re-registering", id, count)
	}

	if err := e.r.DeregisterInstance(e.ctx(), id); err != nil {
		t.Fatalf("DeregisterInstance(%s): %v", id, err)
	}
	e.waitFor(e.r2, "deregistered instance gone", func(s registry.Snapshot) bool {
		_, ok := findInstance(s, id)
		return !ok
	})
	if err := e.r.DeregisterInstance(e.ctx(), id); err != nil {
		t.Errorf("DeregisterInstance of a removed ID: %v, want nil", err)
	}
	if err := e.r.DeregisterInstance(e.ctx(), e.instanceID("never")); err != nil {
		t.Errorf("DeregisterInstance of an unknown ID: %v, want nil", err)
	}
	if err := e.r.RegisterInstance(e.ctx(), registry.Instance{Tenant: name, Addr: first.Addr, Healthy: true}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("RegisterInstance without ID: error = %v, want ErrInvalid", err)
	}
}

func testHealth(t *testing.T, e *env) {
	name := e.name("health")
	e.create(e.r, e.tenant(name))
	up, down := e.instanceID("health-up"), e.instanceID("health-down")
	e.register(e.r, up, name, true)
	_, downZ := e.register(e.r2, down, name, false)

	healthOf := func(s registry.Snapshot) map[string]bool {
		m := map[string]bool{}
		for _, in := range s.Instances {
			if in.ID == up || in.ID == down {
				m[in.ID] = in.Healthy
			}
		}
		return m
	}
	for i, r := range []registry.Registry{e.r, e.r2} {
		snap := e.waitFor(r, "one healthy and one unhealthy instance", func(s registry.Snapshot) bool {
			h := healthOf(s)
			return len(h) == 2 && h[up] && !h[down]
		})
		for _, in := range snap.Instances {
			if in.ID == up || in.ID == down {
				if in.Tenant != name {
					t.Errorf("handle %d: instance %s has tenant %q, want %q", i+1, in.ID, in.Tenant, name)
				}
			}
		}
	}

	// The unhealthy one recovers: its endpoint turns 200 and it is
	// re-registered as healthy (what a supervisor does).
	downZ.healthy.Store(true)
	if err := e.r2.RegisterInstance(e.ctx(), registry.Instance{ID: down, Tenant: name, Addr: downZ.addr(), Healthy: true}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(e.r, "both instances healthy", func(s registry.Snapshot) bool {
		h := healthOf(s)
		return len(h) == 2 && h[up] && h[down]
	})
}

func testSecondHandleSeesWrites(t *testing.T, e *env) {
	name := e.name("seen")
	created := e.create(e.r, e.tenant(name))
	e.waitFor(e.r2, "tenant created through the first handle", func(s registry.Snapshot) bool {
		got, ok := findTenant(s, name)
		return ok && equalTenant(got, created)
	})
	if _, err := e.r2.SetState(e.ctx(), name, registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	e.waitFor(e.r, "state set through the second handle", func(s registry.Snapshot) bool {
		got, ok := findTenant(s, name)
		return ok && got.State == registry.StateSuspended
	})
}

func testWatchZero(t *testing.T, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), e.h.WakeBound)
	defer cancel()
	start := time.Now()
	snap, err := e.r.Watch(ctx, 0)
	if err != nil {
		t.Fatalf("Watch(ctx, 0): %v", err)
	}
	if snap.Version == 0 {
		t.Errorf("Watch(ctx, 0) returned version 0; versions start above 0")
	}
	t.Logf("Watch(ctx, 0) took %v", time.Since(start))
}

type watchResult struct {
	snap registry.Snapshot
	err  error
	at   time.Time
}

func watchAsync(ctx context.Context, r registry.Registry, after uint64) <-chan watchResult {
	ch := make(chan watchResult, 1)
	go func() {
		s, err := r.Watch(ctx, after)
		ch <- watchResult{s, err, time.Now()}
	}()
	return ch
}

func testWatchBlocksThenWakes(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	name := e.name("wake")
	tn := e.tenant(name)
	e.cleanupTenant(name)

	// A shared backend may change under us for unrelated reasons; a wake-up
	// for one of those is fine (the version must still have grown), but
	// three in a row means Watch does not block.
	var (
		snap registry.Snapshot
		ch   <-chan watchResult
	)
	for attempt := 1; ; attempt++ {
		var err error
		snap, err = e.r.Snapshot(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		ch = watchAsync(ctx, e.r, snap.Version)
		select {
		case res := <-ch:
			if res.err != nil {
				t.Fatalf("Watch(%d) returned early: %v", snap.Version, res.err)
			}
			if res.snap.Version <= snap.Version {
				t.Fatalf("Watch(%d) returned version %d without a change", snap.Version, res.snap.Version)
			}
			if attempt == 3 {
				t.Fatalf("Watch(%d) returned within 200ms three times in a row (last at version %d); it should block while nothing changes", snap.Version, res.snap.Version)
			}
			t.Logf("Watch(%d) woke for an unrelated change to version %d; trying again", snap.Version, res.snap.Version)
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}

	start := time.Now()
	if _, err := e.r2.CreateTenant(e.ctx(), tn); err != nil {
		t.Fatalf("CreateTenant through the second handle: %v", err)
	}
	written := time.Now()
	deadline := time.NewTimer(e.h.WakeBound)
	defer deadline.Stop()
	for {
		select {
		case res := <-ch:
			if res.err != nil {
				t.Fatalf("Watch: %v", res.err)
			}
			if res.snap.Version <= snap.Version {
				t.Fatalf("Watch(%d) returned version %d", snap.Version, res.snap.Version)
			}
			if _, ok := findTenant(res.snap, name); ok {
				t.Logf("Watch woke %v after the write started (%v after it returned; the write took %v)",
					res.at.Sub(start), res.at.Sub(written), written.Sub(start))
				return
			}
			snap = res.snap
			ch = watchAsync(ctx, e.r, snap.Version)
		case <-deadline.C:
			t.Fatalf("Watch(%d) did not return within %v of a write through the second handle", snap.Version, e.h.WakeBound)
		}
	}
}

func testWatchCancel(t *testing.T, e *env) {
	snap, err := e.r.Snapshot(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	// Waiting far in the future: only ctx can end this Watch.
	far := snap.Version + 1<<40

	ctx, cancel := context.WithCancel(context.Background())
	ch := watchAsync(ctx, e.r, far)
	time.Sleep(50 * time.Millisecond) // let it block; returning early is caught below
	cancelled := time.Now()
	cancel()
	select {
	case res := <-ch:
		if !errors.Is(res.err, context.Canceled) {
			t.Fatalf("Watch after cancel = %v, want context.Canceled", res.err)
		}
		t.Logf("Watch returned %v after cancel", res.at.Sub(cancelled))
	case <-time.After(e.h.WakeBound):
		t.Fatalf("Watch still blocked %v after its context was cancelled", e.h.WakeBound)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	select {
	case res := <-watchAsync(dctx, e.r2, far):
		if !errors.Is(res.err, context.DeadlineExceeded) {
			t.Fatalf("Watch past its deadline = %v, want context.DeadlineExceeded", res.err)
		}
	case <-time.After(e.h.WakeBound):
		t.Fatalf("Watch still blocked %v after its deadline", e.h.WakeBound)
	}

	// An already-cancelled context with nothing new also returns at once.
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := e.r.Watch(done, far); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func testVersionGrows(t *testing.T, e *env) {
	name := e.name("version")
	id := e.instanceID("version-1")
	snap, err := e.r.Snapshot(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	last := snap.Version
	steps := []struct {
		what    string
		write   func()
		visible func(registry.Snapshot) bool
	}{
		{"create tenant", func() { e.create(e.r, e.tenant(name)) },
			func(s registry.Snapshot) bool { _, ok := findTenant(s, name); return ok }},
		{"suspend tenant", func() {
			if _, err := e.r2.SetState(e.ctx(), name, registry.StateSuspended); err != nil {
				t.Fatal(err)
			}
		}, func(s registry.Snapshot) bool {
			tn, _ := findTenant(s, name)
			return tn.State == registry.StateSuspended
		}},
		{"register instance", func() { e.register(e.r, id, name, true) },
			func(s registry.Snapshot) bool { _, ok := findInstance(s, id); return ok }},
		{"deregister instance", func() {
			if err := e.r2.DeregisterInstance(e.ctx(), id); err != nil {
				t.Fatal(err)
			}
		}, func(s registry.Snapshot) bool { _, ok := findInstance(s, id); return !ok }},
		{"delete tenant", func() {
			if err := e.r.DeleteTenant(e.ctx(), name); err != nil {
				t.Fatal(err)
			}
		}, func(s registry.Snapshot) bool { _, ok := findTenant(s, name); return !ok }},
	}
	for _, st := range steps {
		st.write()
		s := e.waitFor(e.r, st.what, st.visible)
		if s.Version <= last {
			t.Fatalf("after %s the version is %d, not above %d", st.what, s.Version, last)
		}
		last = s.Version
	}
}

func testSnapshotSorted(t *testing.T, e *env) {
	names := []string{e.name("s3"), e.name("s1"), e.name("s2")}
	for _, n := range names {
		e.create(e.r, e.tenant(n))
	}
	var ids []string
	for i, tag := range []string{"z", "b", "y", "a"} {
		id := e.instanceID("i-" + tag)
		ids = append(ids, id)
		e.register(e.r2, id, names[i%len(names)], true)
	}
	snap := e.waitFor(e.r, "every tenant and instance", func(s registry.Snapshot) bool {
		for _, n := range names {
			if _, ok := findTenant(s, n); !ok {
				return false
			}
		}
		for _, id := range ids {
			if _, ok := findInstance(s, id); !ok {
				return false
			}
		}
		return true
	})
	if !slices.IsSortedFunc(snap.Tenants, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("snapshot tenants not sorted by name: %s", e.describe(snap))
	}
	if !slices.IsSortedFunc(snap.Instances, func(a, b registry.Instance) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}) {
		t.Errorf("snapshot instances not sorted by tenant then ID: %s", e.describe(snap))
	}
}

func testSnapshotImmutable(t *testing.T, e *env) {
	name := e.name("frozen")
	e.create(e.r, e.tenant(name))
	id := e.instanceID("frozen-1")
	e.register(e.r, id, name, true)
	snap := e.waitFor(e.r, "tenant and instance", func(s registry.Snapshot) bool {
		_, ok := findInstance(s, id)
		return ok
	})
	frozen := deepCopy(snap)

	// Writes through both handles, including to what the snapshot holds.
	if _, err := e.r.SetState(e.ctx(), name, registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	if err := e.r2.DeregisterInstance(e.ctx(), id); err != nil {
		t.Fatal(err)
	}
	e.create(e.r2, e.tenant(e.name("frozen2")))
	e.register(e.r, e.instanceID("frozen-2"), name, true)
	e.waitFor(e.r, "the writes", func(s registry.Snapshot) bool {
		_, ok := findInstance(s, e.instanceID("frozen-2"))
		return ok
	})

	if !reflect.DeepEqual(snap, frozen) {
		t.Fatalf("a returned snapshot changed after later writes:\nthen %s\nnow  %s", e.describe(frozen), e.describe(snap))
	}
}

func deepCopy(s registry.Snapshot) registry.Snapshot {
	c := registry.Snapshot{Version: s.Version}
	if s.Tenants != nil {
		c.Tenants = make([]registry.Tenant, len(s.Tenants))
		for i, t := range s.Tenants {
			t.Hosts = slices.Clone(t.Hosts)
			c.Tenants[i] = t
		}
	}
	c.Instances = slices.Clone(s.Instances)
	return c
}

// testTenantID: every tenant has an ID, minted by the backend when the
// caller gives none, kept by every later change, and a name deleted and
// created again gets another one.
func testTenantID(t *testing.T, e *env) {
	name := e.name("id")
	in := e.tenant(name)
	in.ID = ""
	created := e.create(e.r, in)
	if err := registry.ValidateID(created.ID); err != nil {
		t.Fatalf("CreateTenant without an ID returned ID %q: %v", created.ID, err)
	}
	for i, r := range []registry.Registry{e.r, e.r2} {
		got, err := r.Tenant(e.ctx(), name)
		if err != nil || got.ID != created.ID {
			t.Fatalf("handle %d: Tenant(%s) ID = %q, %v; want %q", i+1, name, got.ID, err, created.ID)
		}
	}
	snap := e.waitFor(e.r2, "the tenant in the snapshot", func(s registry.Snapshot) bool { _, ok := findTenant(s, name); return ok })
	if got, _ := findTenant(snap, name); got.ID != created.ID {
		t.Fatalf("snapshot ID = %q, want %q", got.ID, created.ID)
	}
	for _, st := range []registry.State{registry.StateSuspended, registry.StateActive} {
		got, err := e.r2.SetState(e.ctx(), name, st)
		if err != nil || got.ID != created.ID {
			t.Fatalf("SetState(%s): ID %q, %v; want %q", st, got.ID, err, created.ID)
		}
	}
	del, err := e.r.MarkDeleted(e.ctx(), name, time.Now().Add(time.Hour))
	if err != nil || del.ID != created.ID {
		t.Fatalf("MarkDeleted: ID %q, %v; want %q", del.ID, err, created.ID)
	}
	back, err := e.r.RestoreTenant(e.ctx(), name)
	if err != nil || back.ID != created.ID {
		t.Fatalf("RestoreTenant: ID %q, %v; want %q", back.ID, err, created.ID)
	}

	other := e.create(e.r, e.tenant(e.name("id2")))
	if other.ID == created.ID {
		t.Fatalf("two tenants share ID %s", other.ID)
	}

	if err := e.r.DeleteTenant(e.ctx(), name); err != nil {
		t.Fatal(err)
	}
	again := e.tenant(name)
	again.ID = ""
	reborn := e.create(e.r2, again)
	if reborn.ID == "" || reborn.ID == created.ID {
		t.Fatalf("tenant %s deleted and created again has ID %q, the old one was %q: want a new ID", name, reborn.ID, created.ID)
	}
	if got, err := e.r.Tenant(e.ctx(), name); err != nil || got.ID != reborn.ID {
		t.Fatalf("Tenant(%s) after re-create: ID %q, %v; want %q", name, got.ID, err, reborn.ID)
	}
}

// testSoftDeleteAndRestore: a deleted tenant keeps its record, ID, name
// and hosts (nobody else can take them) until purged, cannot be resumed,
// and comes back as it was.
func testSoftDeleteAndRestore(t *testing.T, e *env) {
	name := e.name("soft")
	www := "www." + host(name)
	created := e.create(e.r, e.tenant(name, host(name), www))

	purgeAfter := time.Now().Add(30 * 24 * time.Hour)
	before := time.Now()
	del, err := e.r2.MarkDeleted(e.ctx(), name, purgeAfter)
	if err != nil {
		t.Fatalf("MarkDeleted(%s): %v", name, err)
	}
	if del.State != registry.StateDeleted || del.ID != created.ID || !slices.Equal(del.Hosts, created.Hosts) ||
		!del.PurgeAfter.Equal(purgeAfter.Round(0)) && del.PurgeAfter.Sub(purgeAfter).Abs() > time.Microsecond ||
		del.DeletedAt.Before(before.Add(-time.Minute)) || del.DeletedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("MarkDeleted returned %+v; want state deleted, ID %s, hosts %v, purge after %v", del, created.ID, created.Hosts, purgeAfter)
	}
	for i, r := range []registry.Registry{e.r, e.r2} {
		got, err := r.Tenant(e.ctx(), name)
		if err != nil || !equalTenant(got, del) {
			t.Fatalf("handle %d: Tenant(%s) = %+v, %v; want %+v", i+1, name, got, err, del)
		}
	}
	e.waitFor(e.r, "the deleted tenant in the snapshot", func(s registry.Snapshot) bool {
		got, ok := findTenant(s, name)
		return ok && equalTenant(got, del)
	})

	// Its name and hosts stay claimed.
	if _, err := e.r.CreateTenant(e.ctx(), e.tenant(name, "new."+host(name))); !errors.Is(err, registry.ErrExists) {
		t.Errorf("CreateTenant(%s) while it is deleted: %v, want ErrExists", name, err)
	}
	thief := e.name("softthief")
	e.cleanupTenant(thief)
	var ht *registry.HostTakenError
	if _, err := e.r2.CreateTenant(e.ctx(), e.tenant(thief, www)); !errors.As(err, &ht) || ht.Owner != name {
		t.Errorf("CreateTenant claiming %s of deleted %s: %v, want HostTakenError owned by it", www, name, err)
	}

	// Not resumed, suspended or deleted again by mistake.
	for _, st := range []registry.State{registry.StateActive, registry.StateSuspended} {
		if _, err := e.r.SetState(e.ctx(), name, st); !errors.Is(err, registry.ErrWrongState) {
			t.Errorf("SetState(%s, %s) of a deleted tenant: %v, want ErrWrongState", name, st, err)
		}
	}
	if _, err := e.r.MarkDeleted(e.ctx(), name, purgeAfter); !errors.Is(err, registry.ErrWrongState) {
		t.Errorf("MarkDeleted of a deleted tenant: %v, want ErrWrongState", err)
	}
	if _, err := e.r.MarkDeleted(e.ctx(), e.name("missing"), purgeAfter); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("MarkDeleted(missing): %v, want ErrNotFound", err)
	}

	back, err := e.r.RestoreTenant(e.ctx(), name)
	if err != nil || !equalTenant(back, created) {
		t.Fatalf("RestoreTenant = %+v, %v; want the tenant as created: %+v", back, err, created)
	}
	if got, err := e.r2.Tenant(e.ctx(), name); err != nil || !equalTenant(got, created) {
		t.Fatalf("after restore, Tenant(%s) = %+v, %v; want %+v", name, got, err, created)
	}
	if _, err := e.r.RestoreTenant(e.ctx(), name); !errors.Is(err, registry.ErrWrongState) {
		t.Errorf("RestoreTenant of an active tenant: %v, want ErrWrongState", err)
	}
	if _, err := e.r.RestoreTenant(e.ctx(), e.name("missing")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("RestoreTenant(missing): %v, want ErrNotFound", err)
	}
	// A suspended tenant can be deleted too, and a restored one again.
	if _, err := e.r.SetState(e.ctx(), name, registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.MarkDeleted(e.ctx(), name, purgeAfter); err != nil {
		t.Fatalf("MarkDeleted of a suspended tenant: %v", err)
	}
	if _, err := e.r.RestoreTenant(e.ctx(), name); err != nil {
		t.Fatal(err)
	}
	past, err := e.r.MarkDeleted(e.ctx(), name, time.Now().Add(-time.Hour))
	if err != nil || past.PurgeAfter.Before(past.DeletedAt) || past.Validate() != nil {
		t.Errorf("MarkDeleted with purge_after in the past: %+v, %v; want purge_after = deleted_at", past, err)
	}
}

// testPurgeTenant: PurgeTenant removes only the tenant with the given ID.
func testPurgeTenant(t *testing.T, e *env) {
	name := e.name("purge")
	created := e.create(e.r, e.tenant(name))
	if _, err := e.r.MarkDeleted(e.ctx(), name, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.r2.PurgeTenant(e.ctx(), name, registry.NewID()); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("PurgeTenant with another ID: %v, want ErrNotFound", err)
	}
	if got, err := e.r.Tenant(e.ctx(), name); err != nil || got.ID != created.ID {
		t.Fatalf("PurgeTenant with another ID removed the tenant: %+v, %v", got, err)
	}
	if err := e.r2.PurgeTenant(e.ctx(), name, created.ID); err != nil {
		t.Fatalf("PurgeTenant(%s, %s): %v", name, created.ID, err)
	}
	if _, err := e.r.Tenant(e.ctx(), name); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after PurgeTenant: Tenant(%s) error %v, want ErrNotFound", name, err)
	}
	if err := e.r.PurgeTenant(e.ctx(), name, created.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second PurgeTenant: %v, want ErrNotFound", err)
	}
	// Hosts are free for a new tenant of the same name, with a new ID.
	reborn := e.create(e.r2, e.tenant(name))
	if reborn.ID == created.ID {
		t.Fatalf("re-created tenant got the purged one's ID")
	}
}

// testCreatingState: a tenant may be created in state creating (claimed,
// not routed) and then activated with SetState.
func testCreatingState(t *testing.T, e *env) {
	name := e.name("creating")
	in := e.tenant(name)
	in.State = registry.StateCreating
	created := e.create(e.r, in)
	if created.State != registry.StateCreating {
		t.Fatalf("CreateTenant(creating) state = %s", created.State)
	}
	if _, err := e.r.MarkDeleted(e.ctx(), name, time.Now().Add(time.Hour)); !errors.Is(err, registry.ErrWrongState) {
		t.Errorf("MarkDeleted of a tenant being created: %v, want ErrWrongState", err)
	}
	got, err := e.r2.SetState(e.ctx(), name, registry.StateActive)
	if err != nil || got.State != registry.StateActive || got.ID != created.ID {
		t.Fatalf("SetState(active) of a created tenant: %+v, %v", got, err)
	}
}

// hostRaceWinner checks the outcome of names[i] racing to claim host
// contested (errs[i] each one's error): exactly one won, and every other
// got a HostTakenError naming the host and the winner. It returns the
// winner.
func hostRaceWinner(t *testing.T, names []string, errs []error, contested string) string {
	t.Helper()
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				t.Fatalf("both %s and %s claimed %s", winner, names[i], contested)
			}
			winner = names[i]
		}
	}
	if winner == "" {
		t.Fatalf("no tenant claimed %s: errors %v", contested, errs)
	}
	for i, err := range errs {
		var ht *registry.HostTakenError
		if err != nil && (!errors.As(err, &ht) || ht.Host != contested || ht.Owner != winner) {
			t.Errorf("%s: error = %v, want HostTakenError{%s, %s}", names[i], err, contested, winner)
		}
	}
	return winner
}
