package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// tenantColumn is column i (by whitespace) of tenant's line in `campus
// tenant list`.
func (d *devSystem) tenantColumn(tenant string, i int) string {
	d.t.Helper()
	out, err := d.campus(nil, "", "tenant", "list")
	if err != nil {
		d.t.Fatalf("tenant list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > i && f[0] == tenant {
			return f[i]
		}
	}
	d.t.Fatalf("tenant %s not in tenant list:\n%s", tenant, out)
	return ""
}

// TestDevMemoryBudget: campus dev with --max-running 2 and a memory limit.
// A woken third school stops the least recently used one, which wakes
// again on its next request (stopping the next least recently used); a
// school's own memory limit is set with `tenant set --memory` and shown
// in `tenant list`; the limits are enforced with cgroups as root.
func TestDevMemoryBudget(t *testing.T) {
	d := startDev(t, "--start-idle", "--idle-timeout", "1h", "--max-running", "2", "--memory", "256MiB")
	if out, err := d.campus(nil, "", "tenant", "set", "accra", "--memory", "96MiB"); err != nil || !strings.Contains(out, "96MiB") {
		t.Fatalf("tenant set accra --memory 96MiB: %v\n%s", err, out)
	}
	if out, err := d.campus(nil, "", "tenant", "set", "accra", "--memory", "1KB"); err == nil {
		t.Errorf("tenant set --memory 1KB succeeded:\n%s", out)
	}
	if got := d.tenantColumn("accra", 5); got != "96MiB" {
		t.Errorf("tenant list: accra's MEMORY %q, want 96MiB", got)
	}
	if got := d.tenantColumn("nairobi", 5); got != "256MiB" {
		t.Errorf("tenant list: nairobi's MEMORY %q, want campus dev's --memory 256MiB", got)
	}
	if got := d.tenantColumn("nairobi", 4); got != "1h" {
		t.Errorf("tenant list: nairobi's IDLE TIMEOUT %q, want campus dev's --idle-timeout 1h", got)
	}

	// Use them in a known order: default, nairobi, then accra.
	for _, host := range []string{"school.localhost", "nairobi.school.localhost", "accra.school.localhost"} {
		d.waitFor(host, 200, 60*time.Second)
	}
	running := func() (n int, idle []string) {
		for _, name := range []string{"default", "nairobi", "accra"} {
			switch d.tenantRun(name) {
			case "running", "starting":
				n++
			default:
				idle = append(idle, name)
			}
		}
		return n, idle
	}
	if n, idle := running(); n > 2 || len(idle) != 1 || idle[0] != "default" {
		t.Errorf("after default, nairobi, accra: %d running, idle %v; want 2 running, default idle", n, idle)
	}
	// The evicted school wakes again; now nairobi is the least recently used.
	d.waitFor("school.localhost", 200, 60*time.Second)
	if n, idle := running(); n > 2 || len(idle) != 1 || idle[0] != "nairobi" {
		t.Errorf("after waking default again: %d running, idle %v; want 2 running, nairobi idle", n, idle)
	}
	if !strings.Contains(d.logs.String(), `"msg":"evicted for the running cap; stopping child"`) {
		t.Error("no eviction in the log")
	}
	if os.Geteuid() == 0 && !strings.Contains(d.logs.String(), `"cgroups":true`) {
		t.Error("running as root, but the supervisor does not use cgroups")
	}
}
