package supervisor

import (
	"os/exec"
	"strconv"
	"syscall"

	"github.com/campus-saas/campus/registry"
)

// Memory that is a budget (issue 20), per app:
//
//   - Every child runs with a memory limit: the tenant's own
//     (registry.Tenant.Memory) or Config.Memory. Where the supervisor can
//     write cgroups (root; v1, or v2 delegated: cgroup_linux.go) the
//     kernel enforces it in a group of the child's own, with the same CPU
//     weight for every school; a child that goes over is killed by the
//     kernel, alone, and restarted like any crashed child, counted in
//     campus_supervisor_memory_kills_total and in its instance's
//     MemoryKills (what `campus tenant list` shows). Elsewhere the
//     supervisor says so once and the limit is only GOMEMLIMIT.
//   - GOMEMLIMIT is set below the limit (gomemlimit), so the Go runtime
//     collects harder as it nears it instead of being killed first.
//   - A change of the tenant's limit replaces its child (sameTenant): the
//     new one starts with the new GOMEMLIMIT and group.
//
// Per machine, see running.go (Config.MaxRunning).

// gomemlimit is the GOMEMLIMIT of a child whose limit is limit bytes:
// 90%, leaving the rest for what the runtime does not count (stacks,
// runtime structures, the binary's own pages).
func gomemlimit(limit int64) int64 { return limit / 10 * 9 }

// withMemoryLimit adds GOMEMLIMIT for limit to cmd's environment (last,
// so it wins over one inherited from the operator's shell).
func withMemoryLimit(cmd *exec.Cmd, limit int64) {
	if limit <= 0 || cmd == nil {
		return
	}
	if cmd.Env == nil { // what startProc would give it
		cmd.Env = ChildEnv(nil)
	}
	cmd.Env = append(cmd.Env, "GOMEMLIMIT="+strconv.FormatInt(gomemlimit(limit), 10))
}

// memoryLimit is t's limit under this supervisor (0: none).
func (s *Supervisor) memoryLimit(t registry.Tenant) int64 {
	if s.cfg.Memory <= 0 {
		return 0
	}
	return t.MemoryLimit(s.cfg.Memory)
}

// confine puts a started process of tenant t into a new group of its own
// (name, unique per process) with t's limit. Without cgroups, or when
// that fails (logged), the process runs with its GOMEMLIMIT only.
func (s *Supervisor) confine(p *proc, t registry.Tenant, name string) {
	limit := s.memoryLimit(t)
	if s.cg == nil || limit <= 0 {
		return
	}
	cg, err := s.cg.create(name, limit)
	if err == nil {
		if err = cg.add(p.cmd.Process.Pid); err != nil {
			cg.remove()
		}
	}
	if err != nil {
		s.log.Warn("memory limit: cgroup failed; the child runs with GOMEMLIMIT only", "tenant", t.Name,
			"pid", p.cmd.Process.Pid, "err", err)
		return
	}
	p.cg = cg
}

// killedByLimit reports whether p, which has exited, was killed by the
// kernel for exceeding its memory limit.
func (p *proc) killedByLimit() bool {
	if p.cg == nil || p.cmd.ProcessState == nil {
		return false
	}
	return exitSignal(p.cmd.ProcessState) == syscall.SIGKILL.String() && p.cg.oomKills() > 0
}

// exited records how p ended when nobody stopped it: a kill by its memory
// limit is counted and logged as such.
func (c *child) exited(p *proc) {
	if !p.killedByLimit() {
		return
	}
	limit := c.s.memoryLimit(c.tenant)
	c.memKills.Add(1)
	c.killed.Inc()
	c.update(func(st *ChildStatus) { st.MemoryKills++ })
	c.log.Warn("child killed by its memory limit; restarting it", "pid", p.cmd.Process.Pid,
		"memory_limit", limit, "memory_kills", c.memKills.Load())
}

// DefaultMemory is campus dev's per-app memory limit: a 100,000-student
// school's app held 150 MB (issue 20), and import previews are bounded
// (app/import.go); 512 MiB leaves it room to spare.
const DefaultMemory = 512 << 20

// MachineShare is the part of the machine's memory the running cap
// budgets for apps; the rest is for the proxy, the database and the
// kernel's caches.
const MachineShare = 0.75

// DefaultMaxRunning is the running cap for apps limited to limit bytes
// each: as many as fit, at their limit, in MachineShare of the machine's
// memory (MachineMemory), at least 2. The sum of the limits of running
// apps then never exceeds it: a budget, not a bet on how much schools
// use. Raise --max-running knowingly where schools are small.
func DefaultMaxRunning(limit int64) int {
	total := MachineMemory()
	if limit <= 0 || total <= 0 {
		return 0
	}
	return max(2, int(float64(total)*MachineShare)/int(limit))
}
