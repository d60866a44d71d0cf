package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
)

// Memory budget (issue 20): the supervisor flags of `campus dev`. The
// logic is deploy/supervisor's (budget.go, running.go).
type budgetOptions struct {
	memory     string
	maxRunning autoInt
}

// autoInt is an int flag whose default, "auto", is worked out later.
type autoInt struct {
	n   int
	set bool
}

func (a *autoInt) String() string {
	if a == nil || !a.set {
		return "auto"
	}
	return strconv.Itoa(a.n)
}

func (a *autoInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a whole number, 0 or more")
	}
	a.n, a.set = n, true
	return nil
}

func (o *budgetOptions) register(fs interface {
	StringVar(*string, string, string, string)
	Var(flag.Value, string, string)
}) {
	fs.StringVar(&o.memory, "memory", "512MiB", "memory limit of each app (like 512MiB or 1GiB; 0: none), enforced with cgroups where campus runs as root, else GOMEMLIMIT only; campus tenant set T --memory overrides it per tenant")
	fs.Var(&o.maxRunning, "max-running", "apps running at once at most; a woken school beyond it stops the least recently used one (0: no cap; auto: as many as fit at their --memory in 3/4 of the machine's memory)")
}

// resolve checks the flags and returns the limit in bytes and the cap.
func (o *budgetOptions) resolve() (memory int64, maxRunning int, err error) {
	if o.memory != "0" {
		if memory, err = registry.MemoryBytes(o.memory); err != nil {
			return 0, 0, usageErr("--memory %q: want a size like 512MiB or 1GiB, or 0 (no limit)", o.memory)
		}
	}
	if !o.maxRunning.set {
		return memory, supervisor.DefaultMaxRunning(memory), nil
	}
	return memory, o.maxRunning.n, nil
}

// apply sets the budget fields of cfg.
func (o *budgetOptions) apply(cfg *supervisor.Config) error {
	mem, maxRunning, err := o.resolve()
	if err != nil {
		return err
	}
	cfg.Memory, cfg.MaxRunning = mem, maxRunning
	return nil
}

// memoryLabel is a tenant's memory limit as `tenant list` shows it: the
// value in force, its own or (def) the supervisor's (see idleTimeoutLabel).
func memoryLabel(t registry.Tenant, def string) string {
	v := t.Memory
	if v == "" {
		v = def
	}
	switch v {
	case "":
		return "default"
	case "0":
		return "none"
	}
	if n, err := registry.ParseMemory(v); err == nil && n != "" {
		return n
	}
	return v
}

// memoryKills is the MEM KILLS column of `tenant list`: what the
// supervisors running the tenant's instances have counted.
func memoryKills(s registry.Snapshot) map[string]int {
	out := map[string]int{}
	for _, in := range s.Instances {
		out[in.Tenant] = max(out[in.Tenant], in.MemoryKills)
	}
	return out
}
