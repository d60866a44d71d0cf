package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoTestMachineryLinked: the shipped binary does not link what
// starts Consul agents, drives processes in tests or generates load;
// those are cmd/campus-bench's.
func TestNoTestMachineryLinked(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/campus-saas/campus/cmd/campus").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/campus-saas/campus/tenancy") {
		t.Fatalf("go list -deps gave %d packages, not campus's:\n%s", len(deps), out)
	}
	for _, pkg := range []string{"internal/engines", "internal/systemtest", "internal/loadgen"} {
		if slices.Contains(deps, "github.com/campus-saas/campus/"+pkg) {
			t.Errorf("campus links %s", pkg)
		}
	}
}
