package proxy

import (
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
