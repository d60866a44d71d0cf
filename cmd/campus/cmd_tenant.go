package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/registry"
)

const tenantHelp = `Usage: campus tenant COMMAND [flags] [args]

Manage tenants (schools) in the registry. Works beside a running 'campus dev'
(same --data) or against Consul (CONSUL_HTTP_ADDR).

Commands:
  create NAME --host H [--host H2] [--display-name D] [--superuser U]
                         register a tenant and migrate its database
  list [--json]          list tenants
  show NAME [--json]     show one tenant and its instances
  suspend NAME           stop serving a tenant (data kept; a maintenance page is shown)
  resume NAME            serve a suspended tenant again
  delete NAME [--purge-data]
                         remove a tenant; its database is kept unless --purge-data

Run 'campus tenant COMMAND --help' for a command's flags.
`

// tenantCmd carries the options every tenant command shares.
type tenantCmd struct {
	e      *env
	lo     logOptions
	ro     registryOptions
	mo     mongoOptions
	asJSON bool
}

func runTenant(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, tenantHelp)
		if len(args) == 0 {
			return usageErr("a COMMAND is required")
		}
		return errHelp
	}
	type sub struct {
		args, desc string
		extra      func(fs *flag.FlagSet)
		run        func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error
	}
	var (
		hosts       stringList
		displayName string
		superuser   string
		email       string
		purge       bool
		yes         bool
	)
	subs := map[string]sub{
		"create": {"NAME", "Register a tenant with one or more host names (the first is primary) and migrate its database.",
			func(fs *flag.FlagSet) {
				fs.Var(&hosts, "host", "host name of the tenant (repeatable; the first is the primary host)")
				fs.StringVar(&displayName, "display-name", "", "name shown on the tenant's pages (default: the capitalised name)")
				fs.StringVar(&superuser, "superuser", "", "also create this admin user; password from $"+superuserPasswordEnv)
				fs.StringVar(&email, "superuser-email", "", "email of --superuser")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.create(ctx, reg, fs, hosts, displayName, superuser, email)
			}},
		"list": {"", "List tenants.", nil, (*tenantCmd).list},
		"show": {"NAME", "Show one tenant and its instances.", nil, (*tenantCmd).show},
		"suspend": {"NAME", "Suspend a tenant: its app is stopped and its hosts show a maintenance page. Data is kept.", nil,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.setState(ctx, reg, fs, registry.StateSuspended)
			}},
		"resume": {"NAME", "Resume a suspended tenant.", nil,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.setState(ctx, reg, fs, registry.StateActive)
			}},
		"delete": {"NAME", "Delete a tenant and release its host names. The database is kept unless --purge-data.",
			func(fs *flag.FlagSet) {
				fs.BoolVar(&purge, "purge-data", false, "also drop the tenant's database (cannot be undone)")
				fs.BoolVar(&yes, "yes", false, "with --purge-data: do not ask for confirmation")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.delete(ctx, reg, fs, purge, yes)
			}},
	}
	s, ok := subs[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, tenantHelp)
		return usageErr("unknown tenant command %q", args[0])
	}
	tc := &tenantCmd{e: e}
	fs := newFlags("tenant "+args[0], s.args, s.desc)
	tc.lo.register(fs)
	tc.ro.register(fs)
	if args[0] == "create" || args[0] == "delete" {
		tc.mo.register(fs)
	}
	if args[0] == "list" || args[0] == "show" {
		fs.BoolVar(&tc.asJSON, "json", false, "print JSON")
	}
	if s.extra != nil {
		s.extra(fs)
	}
	if err := parseFlags(fs, args[1:], e); err != nil {
		return err
	}
	logger, err := tc.lo.logger(e)
	if err != nil {
		return err
	}
	reg, err := tc.ro.open(ctx, e, logger, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	return s.run(tc, ctx, reg, fs)
}

func oneName(fs *flag.FlagSet) (string, error) {
	if fs.NArg() != 1 {
		return "", usageErr("want exactly one tenant NAME, got %d arguments", fs.NArg())
	}
	return fs.Arg(0), nil
}

func (tc *tenantCmd) create(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, hosts []string, displayName, superuser, email string) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return usageErr("at least one --host is required")
	}
	password := ""
	if superuser != "" {
		if password = tc.e.getenv(superuserPasswordEnv); password == "" {
			return usageErr("--superuser needs the password in $%s", superuserPasswordEnv)
		}
	}
	t, err := registry.NewTenant(name, hosts, displayName)
	if err != nil {
		return err
	}
	uri, err := tc.mo.resolve()
	if err != nil {
		return err
	}
	// Migrate before registering, so that the tenant is never routable
	// with an unusable database.
	st, err := openStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	if _, _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database %q: %w", t.Database, err)
	}
	if superuser != "" {
		if _, err := st.CreateSuperuser(ctx, superuser, email, password); err != nil {
			return describeUserError(err)
		}
	}
	t, err = reg.CreateTenant(ctx, t)
	if err != nil {
		var ht *registry.HostTakenError
		switch {
		case errors.As(err, &ht):
			return fmt.Errorf("cannot create tenant %q: host %s already belongs to tenant %q", name, ht.Host, ht.Owner)
		case errors.Is(err, registry.ErrExists):
			return fmt.Errorf("cannot create tenant %q: a tenant with that name already exists", name)
		}
		return fmt.Errorf("create tenant %q: %w", name, err)
	}
	fmt.Fprintf(tc.e.stdout, "Created tenant %s (%s), database %q, hosts %s.\n", t.Name, t.DisplayName, t.Database, strings.Join(t.Hosts, ", "))
	if superuser != "" {
		fmt.Fprintf(tc.e.stdout, "Superuser %q can log in at http://%s/admin/\n", superuser, t.PrimaryHost)
	} else {
		fmt.Fprintf(tc.e.stdout, "Next: campus manage %s createsuperuser\n", t.Name)
	}
	return nil
}

func (tc *tenantCmd) list(ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	snap, err := reg.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	if tc.asJSON {
		return writeJSON(tc.e, snap.Tenants)
	}
	up := healthyByTenant(snap)
	w := tabwriter.NewWriter(tc.e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tINSTANCES\tDATABASE\tHOSTS\tDISPLAY NAME")
	for _, t := range snap.Tenants {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Name, t.State, up[t.Name], t.Database, strings.Join(t.Hosts, ","), t.DisplayName)
	}
	return w.Flush()
}

func healthyByTenant(s registry.Snapshot) map[string]int {
	up := map[string]int{}
	for _, in := range s.Instances {
		if in.Healthy {
			up[in.Tenant]++
		}
	}
	return up
}

func (tc *tenantCmd) show(ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	snap, err := reg.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	var t *registry.Tenant
	for i := range snap.Tenants {
		if snap.Tenants[i].Name == name {
			t = &snap.Tenants[i]
		}
	}
	if t == nil {
		return fmt.Errorf("unknown tenant %q", name)
	}
	var ins []registry.Instance
	for _, in := range snap.Instances {
		if in.Tenant == name {
			ins = append(ins, in)
		}
	}
	if tc.asJSON {
		return writeJSON(tc.e, struct {
			registry.Tenant
			Instances []registry.Instance `json:"instances"`
		}{*t, ins})
	}
	w := tabwriter.NewWriter(tc.e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Name:\t%s\nDisplay name:\t%s\nState:\t%s\nDatabase:\t%s\nPrimary host:\t%s\nHosts:\t%s\nCreated:\t%s\n",
		t.Name, t.DisplayName, t.State, t.Database, t.PrimaryHost, strings.Join(t.Hosts, ", "), t.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "Instances:\t%d\n", len(ins))
	for _, in := range ins {
		health := "unhealthy"
		if in.Healthy {
			health = "healthy"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", in.ID, in.Addr, health)
	}
	return w.Flush()
}

func (tc *tenantCmd) setState(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, state registry.State) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := reg.SetState(ctx, name, state)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("unknown tenant %q", name)
		}
		return fmt.Errorf("set tenant %q %s: %w", name, state, err)
	}
	fmt.Fprintf(tc.e.stdout, "Tenant %s is now %s.\n", t.Name, t.State)
	return nil
}

func (tc *tenantCmd) delete(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, purge, yes bool) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := reg.Tenant(ctx, name)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("unknown tenant %q", name)
		}
		return fmt.Errorf("look up tenant %q: %w", name, err)
	}
	if purge && !yes {
		ans, err := newPrompter(tc.e).line(fmt.Sprintf("This drops database %q with all of %s's students and users. Type the tenant name to confirm: ", t.Database, t.Name))
		if err != nil {
			return err
		}
		if ans != t.Name {
			return errors.New("not confirmed; nothing was deleted")
		}
	}
	if err := reg.DeleteTenant(ctx, name); err != nil {
		return fmt.Errorf("delete tenant %q: %w", name, err)
	}
	fmt.Fprintf(tc.e.stdout, "Deleted tenant %s; its hosts are free.\n", name)
	if !purge {
		fmt.Fprintf(tc.e.stdout, "Database %q was kept.\n", t.Database)
		return nil
	}
	uri, err := tc.mo.resolve()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	if err := st.Drop(ctx); err != nil {
		return fmt.Errorf("drop database %q: %w", t.Database, err)
	}
	fmt.Fprintf(tc.e.stdout, "Database %q was dropped.\n", t.Database)
	return nil
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
