//go:build linux

package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Memory budget (issue 20), per app: budget.go, cgroup_linux.go.

const mib = 1 << 20

// childEnv reads one variable of a process's environment.
func childEnv(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("read environment of %d: %v", pid, err)
	}
	val := ""
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			val = v // the last one wins, as for the process
		}
	}
	return val
}

// cgroupDir is the folder of pid's group in a cgroup v1 hierarchy.
func cgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("read cgroups of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == controller {
			return filepath.Join(cgroupRoot, controller, parts[2])
		}
	}
	t.Fatalf("process %d is in no %s cgroup", pid, controller)
	return ""
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

// Without cgroups the limit is GOMEMLIMIT alone, 90% of the tenant's own
// limit or the default; the supervisor says once why there is no more.
func TestGOMEMLIMITBelowTheLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Memory = 256 * mib })
	h.createTenant("accra")
	lagos := h.createTenant("lagos")
	if _, err := h.reg.SetMemory(context.Background(), lagos.Name, "128MiB"); err != nil {
		t.Fatal(err)
	}
	h.start()
	_, accra := h.waitInstance("accra", true, 0)
	_, lagosPID := h.waitInstance("lagos", true, 0)
	for _, c := range []struct {
		pid  int
		want int64
	}{{accra, 256 * mib / 10 * 9}, {lagosPID, 128 * mib / 10 * 9}} {
		if got := childEnv(t, c.pid, "GOMEMLIMIT"); got != strconv.FormatInt(c.want, 10) {
			t.Errorf("GOMEMLIMIT of %d = %q, want %d", c.pid, got, c.want)
		}
	}
	if os.Geteuid() != 0 {
		if n := len(h.logs.linesWith("cannot use cgroups")); n != 1 {
			t.Errorf("%d log lines about cgroups, want 1", n)
		}
	}
}

// A child over its limit is killed by the kernel, alone: it is counted,
// shown on its instance, and started again, while another school's child
// (same supervisor, its own limit) keeps its process and keeps answering.
// At the end every group the supervisor made is gone.
func TestMemoryLimitKillsOnlyThatChild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write cgroups (CI runs as root); TestGOMEMLIMITBelowTheLimit covers the rest")
	}
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Memory = 256 * mib })
	hog := h.createTenant("hog")
	if _, err := h.reg.SetMemory(context.Background(), hog.Name, "96MiB"); err != nil {
		t.Fatal(err)
	}
	h.createTenant("calm")
	h.start()
	hogIn, hogPID := h.waitInstance("hog", true, 0)
	calmIn, calmPID := h.waitInstance("calm", true, 0)

	mem := cgroupDir(t, hogPID, "memory")
	if got := readTrim(t, filepath.Join(mem, "memory.limit_in_bytes")); got != strconv.Itoa(96*mib) {
		t.Errorf("hog's memory limit = %s, want %d", got, 96*mib)
	}
	if got := readTrim(t, filepath.Join(cgroupDir(t, calmPID, "memory"), "memory.limit_in_bytes")); got != strconv.Itoa(256*mib) {
		t.Errorf("calm's memory limit = %s, want %d", got, 256*mib)
	}
	for _, pid := range []int{hogPID, calmPID} {
		if got, want := readTrim(t, filepath.Join(cgroupDir(t, pid, "cpu"), "cpu.shares")), strconv.Itoa(1024*runtime.NumCPU()); got != want {
			t.Errorf("cpu.shares of %d = %s, want %s, the same for every school", pid, got, want)
		}
	}
	cpuDir := cgroupDir(t, hogPID, "cpu")
	if cgroupDir(t, hogPID, "memory") == cgroupDir(t, calmPID, "memory") {
		t.Fatal("two schools share a memory cgroup")
	}
	parent := filepath.Dir(mem)

	// calm answers all along, from the same process.
	stop := make(chan struct{})
	calmErrs := make(chan error, 1)
	go func() {
		defer close(calmErrs)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if got, err := get(calmIn.Addr, "calm", "/tenant"); err != nil || got != "calm" {
				calmErrs <- fmt.Errorf("calm answered %q, %v while hog was killed", got, err)
				return
			}
		}
	}()
	go get(hogIn.Addr, "hog", "/hog?mb=300") // never answers: killed on the way

	waitFor(t, 30*time.Second, "hog killed by its limit", func() bool { return !alive(hogPID) })
	newIn, newPID := h.waitInstance("hog", true, hogPID)
	close(stop)
	if err := <-calmErrs; err != nil {
		t.Error(err)
	}
	if alive(calmPID) == false {
		t.Error("calm's process died with hog's")
	}
	if _, pid := h.waitInstance("calm", true, 0); pid != calmPID {
		t.Errorf("calm is served by %d, want its first process %d", pid, calmPID)
	}
	st, _ := h.status("hog")
	if st.MemoryKills != 1 {
		t.Errorf("hog's status = %+v, want 1 memory kill", st)
	}
	if n := counter(t, h.sup.met.memoryKills.WithLabelValues("hog")); n != 1 {
		t.Errorf("memory kills of hog = %v, want 1", n)
	}
	if n := counter(t, h.sup.met.memoryKills.WithLabelValues("calm")); n != 0 {
		t.Errorf("memory kills of calm = %v, want 0", n)
	}
	waitFor(t, 10*time.Second, "hog's instance to show the kill", func() bool {
		ins := h.instances("hog")
		return len(ins) == 1 && ins[0].ID == newIn.ID && ins[0].MemoryKills == 1
	})
	if ins := h.instances("calm"); len(ins) != 1 || ins[0].MemoryKills != 0 {
		t.Errorf("calm's instances = %+v, want one with no memory kill", ins)
	}
	for _, dir := range []string{mem, cpuDir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the killed child's group %s is still there (%v)", dir, err)
		}
	}
	if cgroupDir(t, newPID, "memory") == mem {
		t.Error("the restarted child reuses the killed one's group")
	}

	h.stop()
	if _, err := os.Stat(parent); !os.IsNotExist(err) {
		t.Errorf("the supervisor's cgroup folder %s is still there after it stopped (%v)", parent, err)
	}
}

// A change of a tenant's limit replaces its child (with the new limit);
// another tenant's child is left alone.
func TestMemoryChangeReplacesOnlyThatChild(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Memory = 256 * mib })
	h.createTenant("accra")
	h.createTenant("lagos")
	h.start()
	_, accra := h.waitInstance("accra", true, 0)
	_, lagos := h.waitInstance("lagos", true, 0)
	if _, err := h.reg.SetMemory(context.Background(), "accra", "512MiB"); err != nil {
		t.Fatal(err)
	}
	_, accra2 := h.waitInstance("accra", true, accra)
	if got := childEnv(t, accra2, "GOMEMLIMIT"); got != strconv.Itoa(512*mib/10*9) {
		t.Errorf("GOMEMLIMIT after the change = %s, want %d", got, 512*mib/10*9)
	}
	if _, pid := h.waitInstance("lagos", true, 0); pid != lagos {
		t.Errorf("lagos replaced (%d → %d) by accra's memory change", lagos, pid)
	}
}
