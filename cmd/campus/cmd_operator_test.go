package main

import (
	"strings"
	"testing"

	"github.com/campus-saas/campus/registry"
)

func TestOperatorTokenCommands(t *testing.T) {
	c := newCLI(t)
	r := c.ok("operator", "token", "create", "alice")
	token := strings.TrimSpace(r.stdout)
	if _, ok := registry.OperatorTokenID(token); !ok {
		t.Fatalf("create printed %q, not an operator token", r.stdout)
	}
	if again := c.run("", nil, "operator", "token", "create", "alice"); again.code != 1 || !strings.Contains(again.stderr, "revoke it first") {
		t.Errorf("second token named alice: exit %d, %s", again.code, again.stderr)
	}
	c.ok("operator", "token", "create", "--read-only", "bob")
	list := c.ok("operator", "token", "list").stdout
	if !strings.Contains(list, "alice") || !strings.Contains(list, "read-only") || strings.Contains(list, token) {
		t.Errorf("list:\n%s", list)
	}
	if out := c.ok("operator", "token", "revoke", "alice").stdout; !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %s", out)
	}
	if r := c.run("", nil, "operator", "token", "revoke", "alice"); r.code != 1 {
		t.Errorf("revoke twice: exit %d", r.code)
	}
	if r := c.run("", nil, "operator", "token", "create", "Not A Name"); r.code != 2 {
		t.Errorf("bad name: exit %d, %s", r.code, r.stderr)
	}
	if out := c.ok("audit", "--limit", "5").stdout; !strings.HasPrefix(out, "WHEN") {
		t.Errorf("audit: %s", out)
	}
}
