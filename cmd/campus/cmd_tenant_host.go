package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
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
	if err := checkHostArgs([]string{host}, func(_ int, h string) string {
		return fmt.Sprintf("%s tenant host %s %s %s", cliName, verb, name, h)
	}); err != nil {
		return err
	}
	var (
		t   registry.Tenant
		err error
	)
	if verb == "add" {
		// A host that is already the tenant's, once normalised
		// (Records.Example.org:8000 is records.example.org), changes nothing:
		// say so rather than "added".
		before, lerr := tc.m.Lookup(ctx, name)
		if lerr != nil {
			return lerr
		}
		if n, _ := registry.NormalizeHost(strings.TrimSpace(host)); slices.Contains(before.Hosts, n) {
			given := ""
			if n != host {
				given = fmt.Sprintf(" (given as %s: hosts are matched without case or port)", host)
			}
			fmt.Fprintf(tc.e.stdout, "Host %s is already a host of tenant %s%s; nothing changed (hosts: %s).\n",
				n, name, given, strings.Join(before.Hosts, ", "))
			return nil
		}
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
		return hostArgError(host, err, nil)
	case errors.Is(err, registry.ErrWrongState):
		return fmt.Errorf("tenant %q: hosts can be changed only while it is active or suspended", name)
	case errors.Is(err, registry.ErrNotFound) && verb == "remove":
		if _, lerr := tc.m.Lookup(ctx, name); lerr != nil {
			return lerr
		}
		return fmt.Errorf("%q is not a host of tenant %q; nothing changed (its hosts: %s)", host, name, hostsOf(ctx, tc, name))
	case errors.Is(err, registry.ErrNotFound):
		return &tenancy.UnknownTenantError{Name: name}
	case err != nil:
		return fmt.Errorf("%s host %q of tenant %q: %w", verb, host, name, err)
	}
	done := "added to"
	if verb == "remove" {
		done = "removed from"
	}
	n, _ := registry.NormalizeHost(strings.TrimSpace(host))
	fmt.Fprintf(tc.e.stdout, "Host %s %s tenant %s (hosts: %s; primary: %s).\n", n, done, t.Name, strings.Join(t.Hosts, ", "), t.PrimaryHost)
	return nil
}

// hostsOf lists a tenant's hosts for a message ("?" when it cannot be read).
func hostsOf(ctx context.Context, tc *tenantCmd, name string) string {
	t, err := tc.m.Lookup(ctx, name)
	if err != nil {
		return "?"
	}
	return strings.Join(t.Hosts, ", ")
}
