package supervisor

import (
	"fmt"
	"testing"
)

// TestStartStormRegistersEachTenantsOwnApp (cross-tenant): twelve
// tenants start at once behind a start cap of 2, with the growing
// readiness polls (child.go); when the storm is over every tenant has
// exactly one registered instance, that instance is its own app (it
// answers with its tenant's name) and no address is registered for two
// tenants.
func TestStartStormRegistersEachTenantsOwnApp(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxStarts = 2 })
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("storm%02d", i)
		h.createTenant(name)
		names = append(names, name)
	}
	h.start()
	owner := map[string]string{} // address → tenant
	for _, name := range names {
		in, _ := h.waitInstance(name, true, 0)
		got, err := get(in.Addr, name, "/tenant")
		if err != nil {
			t.Fatalf("GET /tenant of %s at %s: %v", name, in.Addr, err)
		}
		if got != name {
			t.Errorf("the instance registered for %s at %s is %s's app", name, in.Addr, got)
		}
		if other, ok := owner[in.Addr]; ok {
			t.Errorf("address %s is registered for %s and %s", in.Addr, other, name)
		}
		owner[in.Addr] = name
	}
}
