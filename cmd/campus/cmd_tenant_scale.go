package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero (issue 12): `tenant set NAME --idle-timeout D` and the RUN
// and IDLE TIMEOUT columns of `tenant list`.

func (tc *tenantCmd) set(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, idleTimeout string) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "idle-timeout" })
	if !given {
		return usageErr("nothing to set: give --idle-timeout")
	}
	if _, err := registry.ParseIdleTimeout(idleTimeout); err != nil {
		return fmt.Errorf("--idle-timeout %q: want a duration like 15m, 0 (never) or \"default\"", idleTimeout)
	}
	t, err := reg.SetIdleTimeout(ctx, name, idleTimeout)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("unknown tenant %q", name)
		}
		return fmt.Errorf("set idle timeout of tenant %q: %w", name, err)
	}
	fmt.Fprintf(tc.e.stdout, "Tenant %s: idle timeout %s.\n", t.Name, idleTimeoutLabel(t))
	return nil
}

// idleTimeoutLabel is a tenant's idle timeout as `tenant list` shows it.
func idleTimeoutLabel(t registry.Tenant) string {
	switch t.IdleTimeout {
	case "":
		return "default"
	case "0s":
		return "never"
	}
	return t.IdleTimeout
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
