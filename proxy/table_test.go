package proxy

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

func TestUpdateCarriesInstanceState(t *testing.T) {
	tp := newTestProxy(t, Config{})
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	accra := tenant(t, "accra", "Accra Academy", "accra.school.localhost")
	n1 := registry.Instance{ID: "n1", Tenant: "nairobi", Addr: "127.0.0.1:9001", Healthy: true}
	n2 := registry.Instance{ID: "n2", Tenant: "nairobi", Addr: "127.0.0.1:9002", Healthy: true}
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{n1, n2}})

	state := func(id string) *instanceState {
		for _, in := range tp.table.Load().routes["nairobi.school.localhost"].instances {
			if in.id == id {
				return in.instanceState
			}
		}
		return nil
	}
	s1, s2 := state("n1"), state("n2")
	s1.inFlight.Add(3)
	s1.markDown(time.Now())

	moved := n2
	moved.Addr = "127.0.0.1:9999"
	tests := []struct {
		name      string
		snap      registry.Snapshot
		wantSame1 bool // n1 keeps its state
		wantSame2 bool // n2 keeps its state
	}{
		{"another tenant added", registry.Snapshot{Version: 2, Tenants: []registry.Tenant{accra, nairobi},
			Instances: []registry.Instance{n1, n2}}, true, true},
		{"n2 moved to another address", registry.Snapshot{Version: 3, Tenants: []registry.Tenant{accra, nairobi},
			Instances: []registry.Instance{n1, moved}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp.Update(tt.snap)
			if got := state("n1") == s1; got != tt.wantSame1 {
				t.Errorf("n1 kept its state: %v, want %v", got, tt.wantSame1)
			}
			if got := state("n2") == s2; got != tt.wantSame2 {
				t.Errorf("n2 kept its state: %v, want %v", got, tt.wantSame2)
			}
		})
	}
	if s1.inFlight.Load() != 3 || !s1.down(time.Now().UnixNano()) {
		t.Error("n1's in-flight count or dial-failure mark was lost")
	}
	// An instance that leaves and comes back starts afresh.
	tp.Update(registry.Snapshot{Version: 4, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{n2}})
	tp.Update(registry.Snapshot{Version: 5, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{n1, n2}})
	if state("n1") == s1 {
		t.Error("n1 came back with the state of its previous life")
	}
}

func TestUnchangedSnapshotDoesNotSwap(t *testing.T) {
	tp := newTestProxy(t, Config{})
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	n1 := registry.Instance{ID: "n1", Tenant: "nairobi", Addr: "127.0.0.1:9001", Healthy: true}
	base := registry.Snapshot{Version: 1, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{n1}}
	tp.Update(base)

	renamed := nairobi
	renamed.DisplayName = "Nairobi High School"
	recreated := nairobi
	recreated.CreatedAt = time.Now()
	sick := n1
	sick.Healthy = false
	tests := []struct {
		name     string
		snap     registry.Snapshot
		wantSwap bool
	}{
		{"same content, newer version", registry.Snapshot{Version: 7, Tenants: []registry.Tenant{nairobi}, Instances: []registry.Instance{n1}}, false},
		{"only created_at differs", registry.Snapshot{Version: 8, Tenants: []registry.Tenant{recreated}, Instances: []registry.Instance{n1}}, false},
		{"display name changed", registry.Snapshot{Version: 9, Tenants: []registry.Tenant{renamed}, Instances: []registry.Instance{n1}}, true},
		{"instance health changed", registry.Snapshot{Version: 10, Tenants: []registry.Tenant{renamed}, Instances: []registry.Instance{sick}}, true},
		{"instance gone", registry.Snapshot{Version: 11, Tenants: []registry.Tenant{renamed}}, true},
		{"tenant suspended", registry.Snapshot{Version: 12, Tenants: []registry.Tenant{suspended(renamed)}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tp.table.Load()
			updates := testutil.ToFloat64(tp.metrics.tableUpdates)
			tp.Update(tt.snap)
			swapped := tp.table.Load() != before
			if swapped != tt.wantSwap {
				t.Fatalf("swapped = %v, want %v", swapped, tt.wantSwap)
			}
			if got := testutil.ToFloat64(tp.metrics.tableUpdates) - updates; (got == 1) != tt.wantSwap {
				t.Errorf("%s grew by %v", MetricTableUpdates, got)
			}
			if tp.seenVersion.Load() != tt.snap.Version {
				t.Errorf("latest seen version = %d, want %d", tp.seenVersion.Load(), tt.snap.Version)
			}
		})
	}
}

func TestDuplicateHostIsNotRouted(t *testing.T) {
	tp := newTestProxy(t, Config{})
	a := tenant(t, "accra", "Accra Academy", "accra.school.localhost", "shared.example")
	n := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost", "shared.example")
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{a, n}})
	routes := tp.table.Load().routes
	if rt := routes["shared.example"]; rt != nil {
		t.Fatalf("host claimed by two tenants routes to %q", rt.tenant.name)
	}
	if routes["accra.school.localhost"] == nil || routes["nairobi.school.localhost"] == nil {
		t.Fatal("the tenants' own hosts should still route")
	}
}

func TestVanishedTenantMetricsAreDeleted(t *testing.T) {
	tp := newTestProxy(t, Config{})
	def, _, _ := threeSchools(t, tp)
	for _, host := range []string{"nairobi.school.localhost", "accra.school.localhost", "school.localhost"} {
		tp.do(t, request{host: host})
	}
	tp.Update(registry.Snapshot{Version: 2,
		Tenants:   []registry.Tenant{tenant(t, "default", "Default School", "school.localhost")},
		Instances: []registry.Instance{def.instance()}})
	for _, name := range []string{MetricRequests, MetricRequestDuration, MetricUpstreamErrors, MetricTenantInstances} {
		families, err := tp.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == LabelTenant && l.GetValue() != "default" && l.GetValue() != UnknownTenant {
						t.Errorf("%s still has a child for removed tenant %q", name, l.GetValue())
					}
				}
			}
		}
	}
	if got := testutil.ToFloat64(tp.metrics.routes); got != 1 {
		t.Errorf("%s = %v, want 1", MetricRoutes, got)
	}
}

func TestPick(t *testing.T) {
	mk := func(ids ...string) *route {
		rt := &route{}
		for _, id := range ids {
			in := &instance{id: id, healthy: true, instanceState: &instanceState{}}
			rt.pool = append(rt.pool, in)
		}
		return rt
	}
	t.Run("round-robin among equals", func(t *testing.T) {
		rt := mk("a", "b", "c")
		seen := map[string]int{}
		for range 300 {
			seen[rt.pick(nil).id]++
		}
		for _, id := range []string{"a", "b", "c"} {
			if seen[id] != 100 {
				t.Errorf("picks = %v, want 100 each", seen)
			}
		}
	})
	t.Run("least in flight wins", func(t *testing.T) {
		rt := mk("a", "b", "c")
		rt.pool[0].inFlight.Add(2)
		rt.pool[2].inFlight.Add(1)
		for range 10 {
			if got := rt.pick(nil).id; got != "b" {
				t.Fatalf("picked %s, want b", got)
			}
		}
	})
	t.Run("recent dial failure skipped unless alone", func(t *testing.T) {
		rt := mk("a", "b")
		rt.pool[1].inFlight.Add(50)
		rt.pool[0].markDown(time.Now())
		if got := rt.pick(nil).id; got != "b" {
			t.Fatalf("picked %s, want the working b", got)
		}
		if got := rt.pick([]*instance{rt.pool[1]}); got == nil || got.id != "a" {
			t.Fatalf("with b tried, picked %v, want the failed a as a last resort", got)
		}
	})
	t.Run("all tried", func(t *testing.T) {
		rt := mk("a")
		if got := rt.pick(rt.pool); got != nil {
			t.Fatalf("picked %s after every instance was tried", got.id)
		}
		if got := (&route{}).pick(nil); got != nil {
			t.Fatal("empty pool picked something")
		}
	})
}

func TestMalformedSnapshotHostSkipped(t *testing.T) {
	tp := newTestProxy(t, Config{})
	bad := tenant(t, "accra", "Accra Academy", "accra.school.localhost")
	bad.Hosts = append(bad.Hosts, "Not A Host!", "ACCRA.example.")
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{bad}})
	var hosts []string
	for h := range tp.table.Load().routes {
		hosts = append(hosts, h)
	}
	if got := strings.Join(hosts, ","); len(hosts) != 2 || tp.table.Load().routes["accra.example"] == nil {
		t.Fatalf("routed hosts = %s, want accra.school.localhost and the normalised accra.example", got)
	}
}

func TestRebuildReusesUnchangedRoutes(t *testing.T) {
	accra := tenant(t, "accra", "Accra Academy", "accra.school.localhost")
	lagos := tenant(t, "lagos", "Lagos Grammar", "lagos.school.localhost")
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	a1 := registry.Instance{ID: "a1", Tenant: "accra", Addr: "127.0.0.1:9001", Healthy: true}
	n1 := registry.Instance{ID: "n1", Tenant: "nairobi", Addr: "127.0.0.1:9002", Healthy: true}
	n2 := registry.Instance{ID: "n2", Tenant: "nairobi", Addr: "127.0.0.1:9003", Healthy: true}
	base := registry.Snapshot{Version: 1, Tenants: []registry.Tenant{accra, lagos, nairobi},
		Instances: []registry.Instance{a1, n1, n2}}

	accraTwoHosts := tenant(t, "accra", "Accra Academy", "accra.school.localhost", "accra.example")
	renamed := accra
	renamed.DisplayName = "Accra Academy Ltd"
	sick := n2
	sick.Healthy = false
	moved := n2
	moved.Addr = "127.0.0.1:9999"
	kampala := tenant(t, "kampala", "Kampala Hill", "kampala.school.localhost")
	tests := []struct {
		name    string
		tenants []registry.Tenant
		insts   []registry.Instance
		rebuilt []string // tenants whose route must be new; the others' must be the same
	}{
		{"instance unhealthy", []registry.Tenant{accra, lagos, nairobi}, []registry.Instance{a1, n1, sick}, []string{"nairobi"}},
		{"instance moved", []registry.Tenant{accra, lagos, nairobi}, []registry.Instance{a1, n1, moved}, []string{"nairobi"}},
		{"instance gone", []registry.Tenant{accra, lagos, nairobi}, []registry.Instance{a1, n1}, []string{"nairobi"}},
		{"instance order", []registry.Tenant{accra, lagos, nairobi}, []registry.Instance{a1, n2, n1}, []string{"nairobi"}},
		{"first instance", []registry.Tenant{accra, lagos, nairobi},
			[]registry.Instance{a1, {ID: "l1", Tenant: "lagos", Addr: "127.0.0.1:9004", Healthy: true}, n1, n2}, []string{"lagos"}},
		{"display name", []registry.Tenant{renamed, lagos, nairobi}, []registry.Instance{a1, n1, n2}, []string{"accra"}},
		{"suspended", []registry.Tenant{accra, suspended(lagos), nairobi}, []registry.Instance{a1, n1, n2}, []string{"lagos"}},
		{"host added", []registry.Tenant{accraTwoHosts, lagos, nairobi}, []registry.Instance{a1, n1, n2}, nil},
		{"tenant added", []registry.Tenant{accra, kampala, lagos, nairobi}, []registry.Instance{a1, n1, n2}, []string{"kampala"}},
		{"tenant removed", []registry.Tenant{accra, nairobi}, []registry.Instance{a1, n1, n2}, nil},
		{"unsorted instances", []registry.Tenant{accra, lagos, nairobi}, []registry.Instance{n1, a1, n2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := newTestProxy(t, Config{})
			tp.Update(base)
			before := tp.table.Load()
			byTenant := func(tb *table) map[string]*route {
				m := map[string]*route{}
				for _, rt := range tb.routes {
					m[rt.tenant.name] = rt
				}
				return m
			}
			old := byTenant(before)
			old["nairobi"].next.Store(41) // round-robin position: kept with the route
			tp.Update(registry.Snapshot{Version: 2, Tenants: tt.tenants, Instances: tt.insts})
			after := tp.table.Load()
			if after == before {
				t.Fatal("no new table published")
			}
			for name, rt := range byTenant(after) {
				wantNew := slices.Contains(tt.rebuilt, name) || old[name] == nil
				if gotNew := rt != old[name]; gotNew != wantNew {
					t.Errorf("%s: new route = %v, want %v", name, gotNew, wantNew)
				}
				if name == "nairobi" && !wantNew && rt.next.Load() != 41 {
					t.Errorf("reused route lost its round-robin position")
				}
			}
			fresh := newTestProxy(t, Config{})
			fresh.Update(registry.Snapshot{Version: 2, Tenants: tt.tenants, Instances: tt.insts})
			if got, want := describeTable(after), describeTable(fresh.table.Load()); !maps.Equal(got, want) {
				t.Errorf("rebuilt table differs from a fresh one:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// describeTable renders what a table routes, host by host, for comparing
// tables built in different ways.
func describeTable(tb *table) map[string]string {
	out := map[string]string{}
	for host, rt := range tb.routes {
		var b strings.Builder
		fmt.Fprintf(&b, "%s|%s|%s|", rt.tenant.name, rt.displayName, rt.state)
		for _, in := range rt.instances {
			fmt.Fprintf(&b, "%s@%s:%v,", in.id, in.addr, in.healthy)
		}
		b.WriteString("|pool:")
		for _, in := range rt.pool {
			b.WriteString(in.id + ",")
		}
		out[host] = b.String()
	}
	return out
}

// TestRebuildMatchesFreshBuild feeds one proxy random snapshots, each a
// few changes away from the last, and checks after every Update that the
// table routes exactly like a table built from scratch, that instance
// state is carried by ID and address and nothing else, and that the state
// kept between tables and the per-tenant metrics hold only what is in the
// registry.
func TestRebuildMatchesFreshBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"accra", "dakar", "kampala", "lagos", "lusaka", "nairobi"}
	tp := newTestProxy(t, Config{})
	snap := registry.Snapshot{}
	for step := range 300 {
		// Mutate a copy: the snapshot given to Update stays as it was.
		next := registry.Snapshot{Version: uint64(step + 1), Tenants: slices.Clone(snap.Tenants), Instances: slices.Clone(snap.Instances)}
		for range 1 + rng.IntN(3) {
			switch rng.IntN(7) {
			case 0: // add or replace a tenant
				name := names[rng.IntN(len(names))]
				hosts := []string{name + ".school.localhost"}
				if rng.IntN(4) == 0 {
					hosts = append(hosts, "shared.example") // claimed by two tenants now and then
				}
				tn := tenant(t, name, strings.ToUpper(name[:1])+name[1:], hosts...)
				if rng.IntN(5) == 0 {
					tn = suspended(tn)
				}
				next.Tenants = slices.DeleteFunc(next.Tenants, func(x registry.Tenant) bool { return x.Name == name })
				next.Tenants = append(next.Tenants, tn)
			case 1: // remove a tenant
				if len(next.Tenants) > 0 {
					i := rng.IntN(len(next.Tenants))
					next.Tenants = slices.Delete(next.Tenants, i, i+1)
				}
			case 2: // rename a tenant
				if len(next.Tenants) > 0 {
					i := rng.IntN(len(next.Tenants))
					next.Tenants[i].DisplayName = fmt.Sprintf("School %d", rng.IntN(3))
				}
			case 3, 4: // register (or re-register) an instance, maybe for an unknown tenant
				in := registry.Instance{ID: fmt.Sprintf("i%d", rng.IntN(12)), Tenant: names[rng.IntN(len(names))],
					Addr: fmt.Sprintf("127.0.0.1:%d", 9000+rng.IntN(2)), Healthy: rng.IntN(3) > 0}
				next.Instances = slices.DeleteFunc(next.Instances, func(x registry.Instance) bool { return x.ID == in.ID })
				next.Instances = append(next.Instances, in)
			case 5: // deregister
				if len(next.Instances) > 0 {
					i := rng.IntN(len(next.Instances))
					next.Instances = slices.Delete(next.Instances, i, i+1)
				}
			case 6: // flip health
				if len(next.Instances) > 0 {
					i := rng.IntN(len(next.Instances))
					next.Instances[i].Healthy = !next.Instances[i].Healthy
				}
			}
		}
		if rng.IntN(3) > 0 { // mostly sorted, as registries deliver them
			slices.SortFunc(next.Tenants, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })
			slices.SortFunc(next.Instances, func(a, b registry.Instance) int {
				return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.ID, b.ID))
			})
		}

		prevStates := maps.Clone(tp.instances)
		tp.Update(next)
		snap = next

		fresh := newTestProxy(t, Config{})
		fresh.Update(next)
		if got, want := describeTable(tp.table.Load()), describeTable(fresh.table.Load()); !maps.Equal(got, want) {
			t.Fatalf("step %d: table differs from a fresh build:\n got %v\nwant %v", step, got, want)
		}

		known := map[string]bool{}
		for _, tn := range next.Tenants {
			known[tn.Name] = true
		}
		wantIDs := map[string]string{} // instance ID → address, for instances of known tenants
		for _, in := range next.Instances {
			if known[in.Tenant] {
				wantIDs[in.ID] = in.Addr
			}
		}
		if len(tp.tenants) != len(known) {
			t.Fatalf("step %d: %d tenant states kept for %d tenants", step, len(tp.tenants), len(known))
		}
		for name, ts := range tp.tenants {
			if !known[name] {
				t.Fatalf("step %d: state kept for removed tenant %s", step, name)
			}
			if got := testutil.ToFloat64(ts.metrics.instances); int(got) != len(ts.route.pool) {
				t.Errorf("step %d: %s instances gauge = %v, pool has %d", step, name, got, len(ts.route.pool))
			}
		}
		if len(tp.instances) != len(wantIDs) {
			t.Fatalf("step %d: %d instance states kept for %d instances", step, len(tp.instances), len(wantIDs))
		}
		for id, st := range tp.instances {
			addr, ok := wantIDs[id]
			if !ok || st.addr != addr || !st.inMap {
				t.Fatalf("step %d: instance state for %s: %+v (want addr %q, present %v)", step, id, st, addr, ok)
			}
			if old := prevStates[id]; (old == st) != (old != nil && old.addr == addr) {
				t.Fatalf("step %d: %s carried its state: %v, want only when it kept its address", step, id, old == st)
			}
		}
		for _, ts := range tp.tenants {
			for _, in := range ts.route.instances {
				if tp.instances[in.id] != in.instanceState {
					t.Fatalf("step %d: route of %s uses a state for %s that is not the kept one", step, ts.name, in.id)
				}
			}
		}
	}
}
