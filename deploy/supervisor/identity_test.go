package supervisor

import (
	"testing"

	"github.com/campus-saas/campus/registry"
)

// TestReCreatedTenantIsAnotherTenant: a name purged and created again
// between two snapshots the supervisor saw is another tenant (another ID):
// its running child, started for the old one, may not keep serving.
func TestReCreatedTenantIsAnotherTenant(t *testing.T) {
	old, err := registry.NewTenant("lagos", []string{"lagos.school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !sameTenant(old, old) {
		t.Fatal("a tenant is not the same as itself")
	}
	reborn := old
	reborn.ID = registry.NewID()
	if sameTenant(old, reborn) {
		t.Fatal("a tenant with another ID counts as the same: its old child would keep serving")
	}
}
