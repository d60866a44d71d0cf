package proxy

import (
	"testing"

	"github.com/campus-saas/campus/registry"
)

// TestRoutesToFollowsTheTable: RoutesTo (the supervisor's idle-stop wait)
// is true exactly while the latest table lists the instance under that
// tenant; another tenant's instance is never reported as routed.
func TestRoutesToFollowsTheTable(t *testing.T) {
	tp := newTestProxy(t, Config{})
	accra := newUpstream(t, "accra", "a1")
	lagos := newUpstream(t, "lagos", "l1")
	tenants := []registry.Tenant{
		tenant(t, "accra", "Accra", "accra.school.localhost"),
		tenant(t, "lagos", "Lagos", "lagos.school.localhost"),
	}
	unhealthy := accra.instance()
	unhealthy.Healthy = false
	var version uint64
	for _, tc := range []struct {
		name      string
		instances []registry.Instance
		want      map[[2]string]bool // tenant, instance ID
	}{
		{"both registered", []registry.Instance{accra.instance(), lagos.instance()},
			map[[2]string]bool{{"accra", "a1"}: true, {"lagos", "l1"}: true, {"accra", "l1"}: false, {"lagos", "a1"}: false, {"nobody", "a1"}: false}},
		{"accra unhealthy is still listed", []registry.Instance{unhealthy, lagos.instance()},
			map[[2]string]bool{{"accra", "a1"}: true, {"lagos", "a1"}: false}},
		{"accra deregistered", []registry.Instance{lagos.instance()},
			map[[2]string]bool{{"accra", "a1"}: false, {"lagos", "l1"}: true, {"lagos", "a1"}: false}},
	} {
		version++
		tp.Update(registry.Snapshot{Version: version, Tenants: tenants, Instances: tc.instances})
		for k, want := range tc.want {
			if got := tp.RoutesTo(k[0], k[1]); got != want {
				t.Errorf("%s: RoutesTo(%s, %s) = %v, want %v", tc.name, k[0], k[1], got, want)
			}
		}
	}
}
