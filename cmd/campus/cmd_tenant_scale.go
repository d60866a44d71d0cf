package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
)

// Scale to zero (issue 12): `tenant set NAME --idle-timeout D` and the RUN
// and IDLE TIMEOUT columns of `tenant list`; memory budget (issue 20):
// `tenant set NAME --memory SIZE` (the MEMORY and MEM KILLS columns are in
// dev_budget.go).

func (tc *tenantCmd) set(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, idleTimeout, memory string) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["idle-timeout"] && !given["memory"] {
		return usageErr("nothing to set: give --idle-timeout or --memory")
	}
	if _, err := registry.ParseIdleTimeout(idleTimeout); given["idle-timeout"] && err != nil {
		return fmt.Errorf("--idle-timeout %q: want a duration like 15m, 0 (never) or \"default\"", idleTimeout)
	}
	if _, err := registry.ParseMemory(memory); given["memory"] && err != nil {
		return fmt.Errorf("--memory %q: want a size like 768MiB or 2GiB (%d MiB at least), or \"default\"", memory, registry.MinMemory>>20)
	}
	var t registry.Tenant
	defIdle, defMemory := tc.supervisorDefaults()
	if given["idle-timeout"] {
		if t, err = reg.SetIdleTimeout(ctx, name, idleTimeout); err != nil {
			return setError(name, "idle timeout", err)
		}
		fmt.Fprintf(tc.e.stdout, "Tenant %s: idle timeout %s.\n", t.Name, inForce(t.IdleTimeout, idleTimeoutLabel(t, defIdle)))
	}
	if given["memory"] {
		if t, err = reg.SetMemory(ctx, name, memory); err != nil {
			return setError(name, "memory limit", err)
		}
		fmt.Fprintf(tc.e.stdout, "Tenant %s: memory limit %s.\n", t.Name, inForce(t.Memory, memoryLabel(t, defMemory)))
	}
	return nil
}

// inForce says where a value shown for a tenant comes from when it is not
// its own ("15m, the supervisor's default").
func inForce(own, label string) string {
	if own != "" || label == "default" {
		return label
	}
	return label + ", the supervisor's default"
}

func setError(name, what string, err error) error {
	if errors.Is(err, registry.ErrNotFound) {
		return &tenancy.UnknownTenantError{Name: name}
	}
	return fmt.Errorf("set %s of tenant %q: %w", what, name, err)
}

// idleTimeoutLabel is a tenant's idle timeout as `tenant list` shows it:
// the value in force, its own or (def) the supervisor's; "default" when
// the supervisor's is not known here.
func idleTimeoutLabel(t registry.Tenant, def string) string {
	v := t.IdleTimeout
	if v == "" {
		v = def
	}
	switch v {
	case "":
		return "default"
	case "0", "0s":
		return "never"
	}
	if d, err := time.ParseDuration(v); err == nil {
		s := d.String() // 15m0s → 15m, 1h0m0s → 1h
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return v
}

// supervisorDefaults are the idle timeout and memory limit of the
// supervisor that runs the tenants without their own: beside `campus dev`,
// what it recorded in the data folder, when it serves the registry this
// command uses (embedded or Consul); elsewhere not known ("").
func (tc *tenantCmd) supervisorDefaults() (idleTimeout, memory string) {
	st, ok := tenancy.ReadDevState(tc.ro.data)
	switch {
	case !ok:
		return "", ""
	case st.Registry == "" && !tc.ro.embedded(tc.e): // recorded before dev named its registry
		return "", ""
	case st.Registry != "" && st.Registry != tc.ro.identity(tc.e):
		return "", ""
	}
	return st.IdleTimeout, st.Memory
}

// runStatus returns what the registry shows of each tenant's processes:
// running (a healthy instance), starting (instances, none healthy yet),
// idle (active, no instance: scaled to zero, or not started yet) or "-"
// (not served).
func runStatus(s registry.Snapshot) func(registry.Tenant) string {
	healthy, any := map[string]bool{}, map[string]bool{}
	for _, in := range s.Instances {
		any[in.Tenant] = true
		healthy[in.Tenant] = healthy[in.Tenant] || in.Healthy
	}
	return func(t registry.Tenant) string {
		switch {
		case t.State != registry.StateActive:
			return "-"
		case healthy[t.Name]:
			return "running"
		case any[t.Name]:
			return "starting"
		default:
			return "idle"
		}
	}
}
