package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// tenantHostUsage is the line `campus tenant --help` shows for the host
// subcommands.
const tenantHostUsage = `  host add NAME HOST     give a tenant another host name (a custom domain such
                         as records.uonbi.ac.ke); it must be no other tenant's.
                         With HTTPS on, the proxy gets its certificate on the
                         first visit. Point the domain's DNS at the proxies.
  host remove NAME HOST  stop serving a host of a tenant (not its primary host):
                         it answers 404 and its certificate is no longer served
`

// host runs `campus tenant host add|remove NAME HOST`.
func (tc *tenantCmd) host(ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
	if fs.NArg() != 3 || (fs.Arg(0) != "add" && fs.Arg(0) != "remove") {
		return usageErr("want: host add|remove NAME HOST")
	}
	verb, name, host := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	var (
		t   registry.Tenant
		err error
	)
	if verb == "add" {
		t, err = reg.AddHost(ctx, name, host)
	} else {
		t, err = reg.RemoveHost(ctx, name, host)
	}
	var taken *registry.HostTakenError
	switch {
	case errors.As(err, &taken) && taken.Near != "":
		return fmt.Errorf("%v: a school's host may not be under or above another school's", taken)
	case errors.As(err, &taken):
		return fmt.Errorf("host %s already belongs to tenant %q; remove it there first", taken.Host, taken.Owner)
	case errors.Is(err, registry.ErrInvalid):
		return usageErr("%v", err)
	case errors.Is(err, registry.ErrWrongState):
		return fmt.Errorf("tenant %q: hosts can be changed only while it is active or suspended", name)
	case errors.Is(err, registry.ErrNotFound) && verb == "remove":
		if _, lerr := tc.m.Lookup(ctx, name); lerr != nil {
			return lerr
		}
		return fmt.Errorf("%q is not a host of tenant %q", host, name)
	case errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("unknown tenant %q", name)
	case err != nil:
		return fmt.Errorf("%s host %q of tenant %q: %w", verb, host, name, err)
	}
	done := "added to"
	if verb == "remove" {
		done = "removed from"
	}
	fmt.Fprintf(tc.e.stdout, "Host %s %s tenant %s (hosts: %v; primary: %s).\n", host, done, t.Name, t.Hosts, t.PrimaryHost)
	return nil
}
