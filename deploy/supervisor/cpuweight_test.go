//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Starts yield to serving (cgroup_linux.go): a starting child's group
// weighs startShares until the child is ready, then the equal weight of
// every running school.

// TestStartingChildWeighsLessUntilReady (cross-tenant): while lagos's
// child starts (its /readyz fails until a file is removed, so the test
// needs no timing), its group has the starting weight and accra's running
// child keeps the full weight of a school: lagos's start takes none of
// accra's weight. Once lagos is ready both schools weigh the same, each in
// a group of its own.
func TestStartingChildWeighsLessUntilReady(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write cgroups (CI runs as root)")
	}
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Memory = 256 * mib
		c.ReadyTimeout = 10 * time.Minute // lagos starts until the test says
	})
	notReady := filepath.Join(t.TempDir(), "lagos-not-ready")
	if err := os.WriteFile(notReady, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.createTenant("accra")
	h.createTenant("lagos")
	h.setMode("lagos", mode{unhealthyFile: notReady})
	h.start()
	_, accraPID := h.waitInstance("accra", true, 0)
	var lagosPID int
	waitFor(t, 30*time.Second, "lagos's child to be starting", func() bool {
		st, ok := h.status("lagos")
		lagosPID = st.PID
		return ok && st.State == StateStarting && st.PID != 0
	})

	equal := strconv.Itoa(cpuShares * runtime.NumCPU())
	shares := func(pid int) string { return readTrim(t, filepath.Join(cgroupDir(t, pid, "cpu"), "cpu.shares")) }
	if got, want := shares(lagosPID), strconv.Itoa(startShares*runtime.NumCPU()); got != want {
		t.Errorf("cpu.shares of starting lagos = %s, want the starting weight %s", got, want)
	}
	if got := shares(accraPID); got != equal {
		t.Errorf("cpu.shares of running accra while lagos starts = %s, want a school's %s", got, equal)
	}
	if cgroupDir(t, accraPID, "cpu") == cgroupDir(t, lagosPID, "cpu") {
		t.Fatal("two schools share a cpu cgroup")
	}

	if err := os.Remove(notReady); err != nil {
		t.Fatal(err)
	}
	if _, pid := h.waitInstance("lagos", true, 0); pid != lagosPID {
		t.Fatalf("lagos is served by %d, want the process that was starting, %d", pid, lagosPID)
	}
	for _, c := range []struct {
		name string
		pid  int
	}{{"accra", accraPID}, {"lagos", lagosPID}} {
		if got := shares(c.pid); got != equal {
			t.Errorf("cpu.shares of ready %s = %s, want %s, the same for every running school", c.name, got, equal)
		}
	}
}
