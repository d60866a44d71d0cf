package consul_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// TestLegacyTenantGetsAnID: a tenant document written before tenant IDs
// existed gets an ID on its first read through Tenant, written back with
// check-and-set, and every later read (and the next change) sees the same
// ID.
func TestLegacyTenantGetsAnID(t *testing.T) {
	sp, r, _ := newReal(t)
	ctx := ctxT(t, 30*time.Second)
	legacy := map[string]any{
		"name": "old", "display_name": "Old School", "hosts": []string{"old.school.localhost"},
		"primary_host": "old.school.localhost", "database": "old", "state": "active",
		"created_at": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	val, _ := json.Marshal(legacy)
	c := sp.agent.Client(sp.token)
	if _, err := c.KV().Put(&api.KVPair{Key: sp.prefix + "tenants/old", Value: val}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV().Put(&api.KVPair{Key: sp.prefix + "hosts/old.school.localhost", Value: []byte("old")}, nil); err != nil {
		t.Fatal(err)
	}
	first, err := r.Tenant(ctx, "old")
	if err != nil || registry.ValidateID(first.ID) != nil || first.DisplayName != "Old School" {
		t.Fatalf("Tenant(old) = %+v, %v; want the legacy tenant with a new ID", first, err)
	}
	again, err := r.Tenant(ctx, "old")
	if err != nil || again.ID != first.ID {
		t.Fatalf("second read: ID %q, %v; want %q", again.ID, err, first.ID)
	}
	del, err := r.MarkDeleted(ctx, "old", time.Now().Add(time.Hour))
	if err != nil || del.ID != first.ID || del.State != registry.StateDeleted {
		t.Fatalf("MarkDeleted: %+v, %v", del, err)
	}
	// The document keeps the old fields and now has the ID.
	p, _, err := c.KV().Get(sp.prefix+"tenants/old", nil)
	if err != nil || p == nil {
		t.Fatal(err)
	}
	var stored registry.Tenant
	if err := json.Unmarshal(p.Value, &stored); err != nil || stored.ID != first.ID || !stored.Equal(del) {
		t.Fatalf("stored %+v (%v); want %+v", stored, err, del)
	}
	if err := r.PurgeTenant(ctx, "old", registry.NewID()); err == nil {
		t.Fatal("PurgeTenant with another ID succeeded")
	}
	if err := r.PurgeTenant(ctx, "old", first.ID); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.KV().Get(sp.prefix+"hosts/old.school.localhost", nil); p != nil {
		t.Fatal("purge left the host key")
	}
}
