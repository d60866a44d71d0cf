package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Per-app limits enforced by the kernel (issue 20), written as the few
// cgroup files they are rather than through github.com/containerd/cgroups:
// its cgroup1 package brings runtime-spec, logrus, go-systemd, godbus and
// protobuf (and cgroup2 cilium/ebpf) for what is here a mkdir, four
// writes, one read and an rmdir per child.
//
// Every group lives under the supervisor's own cgroup (read from
// /proc/self/cgroup), in a folder of its own, so that whatever limits the
// supervisor (a container, a systemd unit) also limits its apps, and
// several supervisors never share a folder (it is campus-<pid>-<n>, n
// counting the supervisors of the process). cgroup v1 (as on the machines
// this was written on): a group in the memory hierarchy's folder and one in
// the cpu hierarchy beside the supervisor, named with the folder's name as
// prefix (see count for why not in a folder); v2
// (a pure cgroup2 mount): one group with the memory and cpu controllers
// enabled down the path, which the kernel only allows where the
// supervisor's cgroup is delegated and holds no process itself, else v2
// is unavailable.

const (
	cgroupRoot = "/sys/fs/cgroup"
	// cpuShares (v1) and cpuWeight (v2) are the equal CPU weight of
	// every school, set so that a school's share does not depend on how
	// many processes or threads it runs. With v1 a school weighs
	// cpuShares per CPU: as much as its app weighed outside cgroups with a
	// runnable thread per CPU (GOMAXPROCS); measured, one share per school
	// (a single thread's) made starts about twice as slow on a loaded
	// machine.
	cpuShares = 1024
	cpuWeight = 100
	// The kernel's bound of the v2 folder's weight.
	maxCPUWeight = 10000
)

// cgroups is this supervisor's folder in each hierarchy it uses.
type cgroups struct {
	v2  bool
	mem string // the folder of the memory groups (v2: of the groups)
	// cpu, v1: the prefix of the cpu groups, which sit beside the
	// supervisor in its own cpu cgroup, not in a folder (see count);
	// v2: the folder, as mem.
	cpu string

	mu       sync.Mutex
	children int // groups that exist now
}

// cgroup is one child's group.
type cgroup struct {
	g        *cgroups
	mem, cpu string
}

// openCgroups creates this supervisor's folders, after removing those of
// supervisors that are gone. It fails, with a reason to log, where
// cgroups cannot be written (not root, read-only, v2 not delegated).
func openCgroups() (*cgroups, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("campus-%d-%d", os.Getpid(), supervisors.Add(1))
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		// Unified (v2 only).
		base := filepath.Join(cgroupRoot, own[""])
		g := &cgroups{v2: true, mem: filepath.Join(base, name)}
		g.cpu = g.mem
		removeStale(base)
		if err := enableControllers(base); err != nil {
			return nil, fmt.Errorf("cgroup v2 at %s: %w", base, err)
		}
		if err := os.Mkdir(g.mem, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if err := enableControllers(g.mem); err != nil {
			os.Remove(g.mem)
			return nil, fmt.Errorf("cgroup v2 at %s: %w", g.mem, err)
		}
		return g, nil
	}
	memPath, okMem := own["memory"]
	cpuPath, okCPU := own["cpu"]
	if !okMem || !okCPU {
		return nil, errors.New("no cgroup v1 memory and cpu hierarchies and no cgroup v2 mount")
	}
	memBase, cpuBase := filepath.Join(cgroupRoot, "memory", memPath), filepath.Join(cgroupRoot, "cpu", cpuPath)
	g := &cgroups{mem: filepath.Join(memBase, name), cpu: filepath.Join(cpuBase, name)}
	for _, dir := range []string{memBase, cpuBase} {
		removeStale(dir)
	}
	if err := os.Mkdir(g.mem, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup v1: %w", err)
	}
	return g, nil
}

// supervisors numbers the supervisors of this process, whose folders
// must not meet.
var supervisors atomic.Int64

// ownCgroups reads /proc/self/cgroup: controller → path ("" for v2).
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// enableControllers turns on the memory and cpu controllers for the
// children of the v2 group dir.
func enableControllers(dir string) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu"), 0)
}

// removeStale removes the folders (and their empty groups) of
// supervisors that are no longer running: their apps died with them
// (Pdeathsig), so the groups are empty.
func removeStale(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "campus-")
		pid, _, _ := strings.Cut(rest, "-")
		if !ok || !e.IsDir() {
			continue
		}
		if n, err := strconv.Atoi(pid); err != nil || n == os.Getpid() || syscall.Kill(n, 0) == nil {
			continue
		}
		removeTree(filepath.Join(base, e.Name()))
	}
}

// removeTree removes a cgroup folder and its sub-groups (rmdir only: a
// cgroup's files go with it).
func removeTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// close removes this supervisor's folders (all children are gone).
func (g *cgroups) close() {
	removeTree(g.mem)
	if !g.v2 {
		left, _ := filepath.Glob(g.cpu + "-*")
		for _, dir := range left {
			os.Remove(dir)
		}
	}
}

// create makes the group name with a memory limit of mem bytes (no swap
// beyond it) and the equal CPU weight.
func (g *cgroups) create(name string, mem int64) (*cgroup, error) {
	cg := &cgroup{g: g, mem: filepath.Join(g.mem, name), cpu: filepath.Join(g.cpu, name)}
	if !g.v2 {
		cg.cpu = g.cpu + "-" + name
	}
	limit := strconv.FormatInt(mem, 10)
	var writes [][2]string
	if g.v2 {
		writes = [][2]string{{cg.mem, ""}, {"memory.max", limit}, {"memory.swap.max?", "0"}, {"cpu.weight", strconv.Itoa(cpuWeight)}}
	} else {
		writes = [][2]string{{cg.mem, ""}, {"memory.limit_in_bytes", limit}, {"memory.memsw.limit_in_bytes?", limit},
			{cg.cpu, ""}, {"cpu.shares", strconv.Itoa(cpuShares * runtime.NumCPU())}}
	}
	g.count(+1)
	dir := ""
	for _, w := range writes {
		if w[1] == "" { // a folder
			dir = w[0]
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				cg.remove()
				return nil, fmt.Errorf("create cgroup: %w", err)
			}
			continue
		}
		file, optional := strings.CutSuffix(w[0], "?") // absent without swap accounting
		err := os.WriteFile(filepath.Join(dir, file), []byte(w[1]), 0)
		if err != nil && !(optional && errors.Is(err, os.ErrNotExist)) {
			cg.remove()
			return nil, fmt.Errorf("set cgroup %s: %w", file, err)
		}
	}
	return cg, nil
}

// add moves process pid into the group.
func (cg *cgroup) add(pid int) error {
	for _, dir := range cg.dirs() {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move process %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

func (cg *cgroup) dirs() []string {
	if cg.cpu == cg.mem {
		return []string{cg.mem}
	}
	return []string{cg.mem, cg.cpu}
}

// oomKills is how many processes of the group the kernel killed for
// exceeding its memory limit (v1: memory.oom_control, v2: memory.events;
// 0 when the kernel does not say).
func (cg *cgroup) oomKills() int {
	file := "memory.oom_control"
	if cg.g.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.mem, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// count adds delta to the groups of this supervisor. With v1 each
// school's cpu group sits beside the supervisor (in campus dev its process
// holds the database) and the other processes of the machine, weighing
// what one busy thread weighs, and only while it runs: a folder would
// weigh the same whether one app or all are busy (measured: a folder at
// one share per app starved the database when few apps were busy and
// slowed every start). With v2 the groups must be in a folder, which
// weighs one share per app.
func (g *cgroups) count(delta int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.children += delta
	if !g.v2 {
		return
	}
	weight := min(max(g.children, 1)*cpuWeight, maxCPUWeight)
	_ = os.WriteFile(filepath.Join(g.cpu, "cpu.weight"), []byte(strconv.Itoa(weight)), 0) // best effort: a weight, not a limit
}

// remove deletes the group once its processes are gone (the kernel may
// take a moment after the last one is reaped).
func (cg *cgroup) remove() {
	defer cg.g.count(-1)
	for _, dir := range cg.dirs() {
		for i := 0; ; i++ {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) || i == 50 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// MachineMemory is the memory this process may use, in bytes: the
// machine's (MemTotal), or its own memory cgroup's limit when lower (0
// when unknown).
func MachineMemory() int64 {
	total := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total = kb << 10
			}
		}
	}
	own, err := ownCgroups()
	if err != nil {
		return total
	}
	for _, f := range []string{
		filepath.Join(cgroupRoot, "memory", own["memory"], "memory.limit_in_bytes"),
		filepath.Join(cgroupRoot, own[""], "memory.max"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
