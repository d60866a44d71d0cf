package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
)

// TestAppPoolCarriesOneTenant: the pool's command names no tenant and
// carries no URI; an assignment carries exactly one tenant's record and
// URI; malformed or extra input is refused.
func TestAppPoolCarriesOneTenant(t *testing.T) {
	const uri = "mongodb://accra-user:accra-secret@db.example/accra"
	cfg := supervisor.CampusApp{Bin: "/bin/campus", MongoURI: uri, LogLevel: "info", LogFormat: "json"}.Pool(1)
	cmd := cfg.Command()
	if !slices.Equal(cmd.Args, []string{"/bin/campus", "app-pool"}) {
		t.Errorf("pool command args %q, want only app-pool", cmd.Args)
	}
	for _, kv := range cmd.Env {
		if strings.Contains(kv, "MONGODB") || strings.Contains(kv, "accra") {
			t.Errorf("pool command environment has %q", kv)
		}
	}
	accra, err := registry.NewTenant("accra", []string{"accra.school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	line, err := cfg.Assignment(accra, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	a, err := supervisor.ReadAssignment(strings.NewReader(string(line) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Tenant.Equal(accra) || a.MongoURI != uri || a.Listen != "127.0.0.1:9" {
		t.Errorf("assignment = %+v", a)
	}
	for _, c := range []struct{ name, in string }{
		{"empty", ""},
		{"not JSON", "accra\n"},
		{"no tenant", `{"listen":"127.0.0.1:9","mongodb_uri":"mongodb://x"}` + "\n"},
		{"no URI", `{"tenant":{"name":"accra"},"listen":"127.0.0.1:9"}` + "\n"},
		{"unknown field", `{"tenant":{"name":"accra"},"listen":"127.0.0.1:9","mongodb_uri":"mongodb://x","tenants":[]}` + "\n"},
	} {
		if _, err := supervisor.ReadAssignment(strings.NewReader(c.in)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || len(m) != 5 {
		t.Errorf("assignment has fields %v, want tenant, listen, mongodb_uri, log_level, log_format", m)
	}
}
