package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

const tenantHelp = `Usage: campus tenant COMMAND [flags] [args]

Manage tenants (schools) in the registry. Works beside a running 'campus dev'
(same --data) or against Consul (CONSUL_HTTP_ADDR).

Every tenant has an ID, minted when it is created and never changed or
re-used; its database is stamped with it, and no app serves a database
stamped for another ID. A name deleted and created again is a new tenant.

Commands:
  create NAME --host H [--host H2] [--display-name D] [--superuser U]
                         register a tenant and migrate its database; checks
                         everything first and leaves nothing behind if it fails
  list [--deleted] [--json]
                         list tenants (--deleted: the deleted ones, data kept)
  show NAME [--json]     show one tenant and its instances
  suspend NAME           stop serving a tenant (data kept; a maintenance page is shown)
  resume NAME            serve a suspended tenant again
  delete NAME [--retention 720h] [--purge-data]
                         stop serving a tenant (its hosts answer 404) and keep its
                         data for the retention period; its name and hosts stay
                         reserved for it until purged. --purge-data removes it
                         and its database at once
  restore NAME           serve a deleted tenant again: same ID, data and hosts
  backup NAME [-o FILE] [--consistency auto|snapshot|suspend|live]
                         write an archive of one school (record, students, users,
                         history; no sessions or one-time tokens), checksummed
  restore FILE [--as NEW] [--host H]
                         restore an archive, all or nothing: the same tenant (same
                         ID) after a purge, or with --as a new one with a new ID
  set NAME --idle-timeout D
                         stop the tenant's app after D without requests (0: never;
                         "default": the supervisor's --idle-timeout)
  purge NAME | --expired drop a deleted tenant's database and remove it, releasing
                         its name and hosts (--expired: every deleted tenant whose
                         retention has ended)
` + tenantHostUsage + `
Run 'campus tenant COMMAND --help' for a command's flags.
`

// defaultRetention is how long `tenant delete` keeps a tenant's data.
const defaultRetention = 30 * 24 * time.Hour

// tenantCmd carries the options every tenant command shares.
type tenantCmd struct {
	e      *env
	lo     logOptions
	ro     registryOptions
	mo     mongoOptions
	pu     publicURLOptions
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
		retention   time.Duration
		deleted     bool
		expired     bool
		bf          backupFlags // backup, restore FILE: cmd_backup.go
		idleTimeout string
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
		"list": {"", "List tenants; with --deleted, the deleted ones whose data is kept.",
			func(fs *flag.FlagSet) {
				fs.BoolVar(&deleted, "deleted", false, "list the deleted tenants (data kept), with their purge dates")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.list(ctx, reg, fs, deleted)
			}},
		"show": {"NAME", "Show one tenant and its instances.", nil, (*tenantCmd).show},
		"suspend": {"NAME", "Suspend a tenant: its app is stopped and its hosts show a maintenance page. Data is kept.", nil,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.setState(ctx, reg, fs, registry.StateSuspended)
			}},
		"resume": {"NAME", "Resume a suspended tenant.", nil,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.setState(ctx, reg, fs, registry.StateActive)
			}},
		"delete": {"NAME", "Delete a tenant: it is no longer served (its hosts answer 404 and no app runs) and its data is kept for --retention, " +
			"during which its name and hosts stay reserved for it and `campus tenant restore` brings it back as it was. " +
			"`campus tenant purge` removes it for good; so does --purge-data, at once.",
			func(fs *flag.FlagSet) {
				fs.DurationVar(&retention, "retention", defaultRetention, "how long the data is kept before `campus tenant purge --expired` may remove it")
				fs.BoolVar(&purge, "purge-data", false, "remove the tenant and drop its database now (cannot be undone)")
				fs.BoolVar(&yes, "yes", false, "with --purge-data: do not ask for confirmation")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.delete(ctx, reg, fs, retention, purge, yes)
			}},
		"host": {"add|remove NAME HOST", "Add a host name (custom domain) to a tenant, or remove one that is not its primary host.", nil, (*tenantCmd).host},
		"restore": {"NAME | FILE [--as NEWNAME]", restoreDesc, bf.registerRestore,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.restoreNameOrArchive(ctx, reg, fs, &bf)
			}},
		"backup": {"NAME", backupDesc, bf.registerBackup,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.backup(ctx, reg, fs, &bf)
			}},
		"set": {"NAME --idle-timeout D", "Change a tenant's settings (scale to zero: cmd_tenant_scale.go).",
			func(fs *flag.FlagSet) {
				fs.StringVar(&idleTimeout, "idle-timeout", "", `stop the tenant's app after this long without a request (like 15m; 0: never; "default": the supervisor's --idle-timeout)`)
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.set(ctx, reg, fs, idleTimeout)
			}},
		"purge": {"NAME | --expired", "Drop the database of a deleted tenant and remove the tenant, releasing its name and hosts (cannot be undone). " +
			"With --expired, do so for every deleted tenant whose retention has ended, without asking (for cron). " +
			"Also removes what an interrupted `campus tenant create` left.",
			func(fs *flag.FlagSet) {
				fs.BoolVar(&expired, "expired", false, "purge every deleted tenant whose retention has ended")
				fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.purge(ctx, reg, fs, expired, yes)
			}},
	}
	s, ok := subs[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, tenantHelp)
		return usageErr("unknown tenant command %q%s", args[0], didYouMean(args[0], slices.Collect(maps.Keys(subs))))
	}
	tc := &tenantCmd{e: e}
	fs := newFlags("tenant "+args[0], s.args, s.desc)
	tc.lo.register(fs)
	tc.ro.register(fs)
	if args[0] == "create" || args[0] == "delete" || args[0] == "purge" || args[0] == "backup" || args[0] == "restore" {
		tc.mo.register(fs)
	}
	if args[0] == "create" {
		tc.pu.register(fs)
	} else {
		tc.ro.mustExist = true // only create may start a new registry
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

// create registers a tenant all or nothing:
//
//  1. Check everything that can be checked without writing: the name and
//     hosts are valid, the superuser's username, email and password (its
//     source, $CAMPUS_SUPERUSER_PASSWORD, is set), the database URI, that
//     the name and hosts are free in the registry and that the database
//     is reachable and empty.
//  2. Claim the name and hosts in the registry in state "creating": one
//     atomic write, so of two creates of one name exactly one gets here.
//     A creating tenant is neither routed nor supervised.
//  3. Migrate the database, stamping it with the new tenant ID; create the
//     superuser; set the tenant active.
//
// A failure in 3 undoes 2 and 3: the database (empty before we began) is
// dropped and the registry entry removed, by ID. A create that loses the
// claim in 2 has written nothing and touches no database.
func (tc *tenantCmd) create(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, hosts []string, displayName, superuser, email string) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	if err := registry.ValidateName(name); err != nil {
		return usageErr("tenant %v", err)
	}
	if len(hosts) == 0 {
		return usageErr("at least one --host is required")
	}
	password := ""
	if superuser != "" {
		if password = tc.e.getenv(superuserPasswordEnv); password == "" {
			return usageErr("--superuser needs the password in $%s", superuserPasswordEnv)
		}
		if fe := store.ValidateSuperuser(superuser, email, password); fe != nil {
			return fmt.Errorf("cannot create tenant %q: superuser %w; nothing was created", name, describeUserError(fe))
		}
	}
	t, err := registry.NewTenant(name, hosts, displayName)
	if err != nil {
		return err
	}
	t.State = registry.StateCreating
	if _, err := tc.pu.resolve(tc.ro.data); err != nil {
		return err
	}
	uri, err := tc.mo.reach(ctx, tc.ro.data)
	if err != nil {
		return err
	}
	if err := checkFree(ctx, reg, t); err != nil {
		return err
	}
	st, err := tenancy.OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return err
	}

	if h := createHooks.beforeClaim; h != nil {
		h(t)
	}
	claimed, err := reg.CreateTenant(ctx, t)
	if err != nil {
		return createError(ctx, reg, t, err)
	}
	// From here on, everything written is ours and is undone on failure.
	fail := func(what string, cause error, dropDB bool) error {
		return tc.undoClaim(ctx, reg, st, claimed, fmt.Sprintf("cannot create tenant %q: %s", name, what), cause, dropDB)
	}
	// Checked again now that the name is ours: nobody may have written to
	// the database meanwhile.
	if err := checkEmptyDatabase(ctx, st, t.Name); err != nil {
		return fail("database check", err, false)
	}
	if _, _, err := st.MigrateTenant(ctx, claimed.ID); err != nil {
		return fail(fmt.Sprintf("migrate database %q", t.Database), err, true)
	}
	if superuser != "" {
		if _, err := st.CreateSuperuser(ctx, superuser, email, password); err != nil {
			return fail("create superuser", describeUserError(err), true)
		}
	}
	if tc.creds(reg) != nil {
		if err := tc.issueToken(ctx, reg, claimed.Name); err != nil {
			return fail("issue the tenant's Consul ACL token", err, true)
		}
	}
	if h := createHooks.beforeActivate; h != nil {
		if err := h(claimed); err != nil {
			return fail("test hook", err, true)
		}
	}
	if claimed, err = reg.SetState(ctx, claimed.Name, registry.StateActive); err != nil {
		return fail("activate", err, true)
	}
	fmt.Fprintf(tc.e.stdout, "Created tenant %s (%s), ID %s, database %q, hosts %s.\n", claimed.Name, claimed.DisplayName, claimed.ID, claimed.Database, strings.Join(claimed.Hosts, ", "))
	if superuser != "" {
		public, err := tc.pu.resolve(tc.ro.data)
		if err != nil {
			public = defaultPublicURL // checked before anything was written; cannot fail here
		}
		fmt.Fprintf(tc.e.stdout, "Superuser %q can log in at %s\n", superuser, public.tenantURL(claimed.PrimaryHost, "/admin/"))
	} else {
		fmt.Fprintf(tc.e.stdout, "Next: campus manage %s createsuperuser\n", claimed.Name)
	}
	return nil
}

// createHooks let tests stop a create between its steps; nil otherwise.
var createHooks struct {
	beforeClaim    func(registry.Tenant)       // after every check, before the registry write
	beforeActivate func(registry.Tenant) error // database and superuser done; an error fails the create
}

// checkFree reports, before anything is written, a taken name or host in
// the words an operator needs. CreateTenant decides for real.
func checkFree(ctx context.Context, reg registry.Registry, t registry.Tenant) error {
	existing, err := reg.Tenant(ctx, t.Name)
	switch {
	case err == nil:
		return existsError(existing)
	case !errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("look up tenant %q: %w", t.Name, err)
	}
	all, err := reg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	for _, h := range t.Hosts {
		for _, o := range all {
			if o.HasHost(h) {
				return hostTakenError(t.Name, h, o)
			}
		}
	}
	return nil
}

// checkEmptyDatabase refuses a database that already holds anything: data
// of a tenant deleted before tenant IDs existed, or of another deployment.
// A new tenant starts with an empty database, always.
func checkEmptyDatabase(ctx context.Context, st *store.Store, name string) error {
	empty, err := st.Empty(ctx)
	if err != nil {
		return err
	}
	if empty {
		return nil
	}
	stamp, err := st.TenantID(ctx)
	if err != nil {
		return err
	}
	owner := "it is not stamped with a tenant ID (a tenant deleted with its data kept before tenant IDs existed?)"
	if stamp != "" {
		owner = "it is stamped for tenant ID " + stamp + ", which is not in the registry"
	}
	return fmt.Errorf("cannot create tenant %q: database %q already holds data and %s. Nothing was created; "+
		"a new school never gets old data. Drop that database yourself if it is not needed (mongosh: db.getSiblingDB(%q).dropDatabase())",
		name, st.DatabaseName(), owner, st.DatabaseName())
}

// createError describes a failed claim; a lost race ends here too.
func createError(ctx context.Context, reg registry.Registry, t registry.Tenant, err error) error {
	var ht *registry.HostTakenError
	switch {
	case errors.As(err, &ht) && ht.Near != "":
		return fmt.Errorf("cannot create tenant %q: %v (a school's host may not be under or above another school's); nothing was created", t.Name, ht)
	case errors.As(err, &ht):
		if owner, rerr := reg.Tenant(ctx, ht.Owner); rerr == nil {
			return hostTakenError(t.Name, ht.Host, owner)
		}
		return fmt.Errorf("cannot create tenant %q: host %s already belongs to tenant %q; nothing was created", t.Name, ht.Host, ht.Owner)
	case errors.Is(err, registry.ErrExists):
		if existing, rerr := reg.Tenant(ctx, t.Name); rerr == nil {
			return existsError(existing)
		}
		return fmt.Errorf("cannot create tenant %q: a tenant with that name already exists; nothing was created", t.Name)
	}
	return fmt.Errorf("create tenant %q: %w", t.Name, err)
}

func existsError(t registry.Tenant) error {
	switch t.State {
	case registry.StateDeleted:
		return fmt.Errorf("cannot create tenant %q: a deleted tenant of that name (ID %s) keeps its data until %s. "+
			"Bring that school back with `campus tenant restore %s`, or remove it and its data for good with `campus tenant purge %s` first; nothing was created",
			t.Name, t.ID, t.PurgeAfter.Format(time.RFC3339), t.Name, t.Name)
	case registry.StateCreating:
		return fmt.Errorf("cannot create tenant %q: another create of it (ID %s, started %s) is running or was interrupted. "+
			"If none is running, remove what it left with `campus tenant purge %s`; nothing was created",
			t.Name, t.ID, t.CreatedAt.Format(time.RFC3339), t.Name)
	}
	return fmt.Errorf("cannot create tenant %q: a tenant with that name already exists; nothing was created", t.Name)
}

func hostTakenError(name, host string, owner registry.Tenant) error {
	if owner.State == registry.StateDeleted {
		return fmt.Errorf("cannot create tenant %q: host %s belongs to tenant %q, deleted with its data kept until %s; "+
			"a deleted tenant's hosts stay reserved for it until `campus tenant purge %s`; nothing was created",
			name, host, owner.Name, owner.PurgeAfter.Format(time.RFC3339), owner.Name)
	}
	return fmt.Errorf("cannot create tenant %q: host %s already belongs to tenant %q; nothing was created", name, host, owner.Name)
}

func (tc *tenantCmd) list(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, deleted bool) error {
	if err := noArgs(fs); err != nil {
		return err
	}
	snap, err := reg.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	tenants := []registry.Tenant{}
	for _, t := range snap.Tenants {
		if (t.State == registry.StateDeleted) == deleted {
			tenants = append(tenants, t)
		}
	}
	if tc.asJSON {
		return writeJSON(tc.e, tenants)
	}
	w := tabwriter.NewWriter(tc.e.stdout, 0, 4, 2, ' ', 0)
	if deleted {
		fmt.Fprintln(w, "NAME\tID\tDELETED\tPURGE AFTER\tDATABASE\tHOSTS (reserved)\tDISPLAY NAME")
		for _, t := range tenants {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.ID, t.DeletedAt.Format(time.RFC3339), t.PurgeAfter.Format(time.RFC3339),
				t.Database, strings.Join(t.Hosts, ","), t.DisplayName)
		}
		return w.Flush()
	}
	up := healthyByTenant(snap)
	run := runStatus(snap)
	fmt.Fprintln(w, "NAME\tSTATE\tRUN\tINSTANCES\tIDLE TIMEOUT\tDATABASE\tHOSTS\tID\tDISPLAY NAME")
	for _, t := range tenants {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.State, run(t), up[t.Name], idleTimeoutLabel(t),
			t.Database, strings.Join(t.Hosts, ","), t.ID, t.DisplayName)
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
	fmt.Fprintf(w, "Name:\t%s\nID:\t%s\nDisplay name:\t%s\nState:\t%s\nDatabase:\t%s\nPrimary host:\t%s\nHosts:\t%s\nCreated:\t%s\n",
		t.Name, t.ID, t.DisplayName, t.State, t.Database, t.PrimaryHost, strings.Join(t.Hosts, ", "), t.CreatedAt.Format(time.RFC3339))
	if t.State == registry.StateDeleted {
		fmt.Fprintf(w, "Deleted:\t%s\nPurge after:\t%s (data kept, hosts reserved; `campus tenant restore %s` or `campus tenant purge %s`)\n",
			t.DeletedAt.Format(time.RFC3339), t.PurgeAfter.Format(time.RFC3339), t.Name, t.Name)
	}
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
		if errors.Is(err, registry.ErrWrongState) {
			return fmt.Errorf("tenant %q is deleted; bring it back with `campus tenant restore %s`", name, name)
		}
		return fmt.Errorf("set tenant %q %s: %w", name, state, err)
	}
	fmt.Fprintf(tc.e.stdout, "Tenant %s is now %s.\n", t.Name, t.State)
	return nil
}

// lookUp reads one tenant, with a plain message for an unknown one.
func lookUp(ctx context.Context, reg registry.Registry, name string) (registry.Tenant, error) {
	t, err := reg.Tenant(ctx, name)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return registry.Tenant{}, fmt.Errorf("unknown tenant %q", name)
		}
		return registry.Tenant{}, fmt.Errorf("look up tenant %q: %w", name, err)
	}
	return t, nil
}

func (tc *tenantCmd) delete(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, retention time.Duration, purge, yes bool) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	if retention <= 0 {
		return usageErr("--retention must be positive; --purge-data removes a tenant at once")
	}
	t, err := lookUp(ctx, reg, name)
	if err != nil {
		return err
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
	switch t.State {
	case registry.StateDeleted:
		if !purge {
			return fmt.Errorf("tenant %q is already deleted; its data is kept until %s (`campus tenant restore %s` or `campus tenant purge %s`)",
				name, t.PurgeAfter.Format(time.RFC3339), name, name)
		}
	case registry.StateCreating:
		return fmt.Errorf("tenant %q is being created (or its create was interrupted); if no create is running, remove it with `campus tenant purge %s`", name, name)
	default:
		// Stop serving first: should --purge-data fail half-way, what is
		// left is a deleted tenant that `campus tenant purge` finishes.
		if t, err = reg.MarkDeleted(ctx, name, time.Now().Add(retention)); err != nil {
			return fmt.Errorf("delete tenant %q: %w", name, err)
		}
	}
	if err := tc.revokeToken(ctx, reg, t.Name); err != nil {
		return fmt.Errorf("delete tenant %q: it is deleted, but: %w (run `campus tenant delete %s` again)", name, err, name)
	}
	if purge {
		return tc.purgeOne(ctx, reg, t)
	}
	fmt.Fprintf(tc.e.stdout, "Deleted tenant %s (ID %s): it is no longer served and its hosts answer 404.\n", t.Name, t.ID)
	fmt.Fprintf(tc.e.stdout, "Database %q is kept until %s; hosts %s and the name stay reserved for it until then.\n",
		t.Database, t.PurgeAfter.Format(time.RFC3339), strings.Join(t.Hosts, ", "))
	fmt.Fprintf(tc.e.stdout, "Undo: campus tenant restore %s    Remove now: campus tenant purge %s\n", t.Name, t.Name)
	return nil
}

func (tc *tenantCmd) restore(ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := reg.RestoreTenant(ctx, name)
	if err != nil {
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return fmt.Errorf("unknown tenant %q (a purged tenant cannot be restored)", name)
		case errors.Is(err, registry.ErrWrongState):
			cur, _ := reg.Tenant(ctx, name)
			return fmt.Errorf("tenant %q is %s, not deleted; nothing to restore", name, cur.State)
		}
		return fmt.Errorf("restore tenant %q: %w", name, err)
	}
	fmt.Fprintf(tc.e.stdout, "Restored tenant %s (ID %s): served again at %s with its data in database %q.\n",
		t.Name, t.ID, strings.Join(t.Hosts, ", "), t.Database)
	if tc.creds(reg) != nil {
		// Its old token was revoked by the delete: its apps need the new one.
		return tc.issueToken(ctx, reg, t.Name)
	}
	return nil
}

func (tc *tenantCmd) purge(ctx context.Context, reg registry.Registry, fs *flag.FlagSet, expired, yes bool) error {
	if expired {
		if err := noArgs(fs); err != nil {
			return usageErr("--expired takes no NAME")
		}
		return tc.purgeExpired(ctx, reg)
	}
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := lookUp(ctx, reg, name)
	if err != nil {
		return err
	}
	if t.State != registry.StateDeleted && t.State != registry.StateCreating {
		return fmt.Errorf("tenant %q is %s; delete it first (`campus tenant delete %s`), or use `campus tenant delete %s --purge-data`", name, t.State, name, name)
	}
	if !yes {
		ans, err := newPrompter(tc.e).line(fmt.Sprintf("This drops database %q with all of %s's students and users, and releases its hosts. Type the tenant name to confirm: ", t.Database, t.Name))
		if err != nil {
			return err
		}
		if ans != t.Name {
			return errors.New("not confirmed; nothing was purged")
		}
	}
	return tc.purgeOne(ctx, reg, t)
}

// purgeExpired purges every deleted tenant whose retention has ended, one
// by one: a failure is reported and the others still go.
func (tc *tenantCmd) purgeExpired(ctx context.Context, reg registry.Registry) error {
	all, err := reg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	now := time.Now()
	var errs []error
	n := 0
	for _, t := range all {
		if t.State != registry.StateDeleted || t.PurgeAfter.After(now) {
			continue
		}
		if err := tc.purgeOne(ctx, reg, t); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	fmt.Fprintf(tc.e.stdout, "Purged %d tenants whose retention had ended.\n", n)
	if len(errs) > 0 {
		return fmt.Errorf("%d tenants could not be purged: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// purgeOne drops t's database, then removes t (by ID) from the registry:
// in that order, so that an interruption leaves a tenant to purge again,
// never data without a tenant. A database stamped for another tenant ID
// is not dropped.
func (tc *tenantCmd) purgeOne(ctx context.Context, reg registry.Registry, t registry.Tenant) error {
	uri, err := tc.mo.reach(ctx, tc.ro.data)
	if err != nil {
		return err
	}
	st, err := tenancy.OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	stamp, err := st.TenantID(ctx)
	if err != nil {
		return fmt.Errorf("purge tenant %q: %w", t.Name, err)
	}
	if stamp != "" && stamp != t.ID {
		return fmt.Errorf("purge tenant %q: database %q is stamped for tenant ID %s, not for this tenant's ID %s; not dropping another tenant's data (nothing was purged)",
			t.Name, t.Database, stamp, t.ID)
	}
	if err := st.Drop(ctx); err != nil {
		return fmt.Errorf("purge tenant %q: %w", t.Name, err)
	}
	if err := reg.PurgeTenant(ctx, t.Name, t.ID); err != nil {
		return fmt.Errorf("purge tenant %q: database dropped, but: %w", t.Name, err)
	}
	if err := tc.revokeToken(ctx, reg, t.Name); err != nil {
		return fmt.Errorf("purge tenant %q: purged, but: %w", t.Name, err)
	}
	fmt.Fprintf(tc.e.stdout, "Purged tenant %s (ID %s): database %q dropped; name and hosts %s are free.\n",
		t.Name, t.ID, t.Database, strings.Join(t.Hosts, ", "))
	return nil
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// tenantCredentials is implemented by registries that issue each tenant a
// credential of its own (Consul with ACLs: see registry/consul/acl.go).
type tenantCredentials interface {
	TenantToken(ctx context.Context, tenant string, rotate bool) (string, error)
	RevokeTenantToken(ctx context.Context, tenant string) error
}

func (tc *tenantCmd) creds(reg registry.Registry) tenantCredentials {
	c, _ := reg.(tenantCredentials)
	return c
}

// issueToken creates the tenant's app token. Without Consul ACLs there is
// nothing to issue, and the operator is told what that means.
func (tc *tenantCmd) issueToken(ctx context.Context, reg registry.Registry, name string) error {
	_, err := tc.creds(reg).TenantToken(ctx, name, false)
	if errors.Is(err, consul.ErrACLDisabled) {
		fmt.Fprintf(tc.e.stderr, "warning: Consul runs without ACLs, so any process that reaches it can register an app for %s; enable ACLs (docs/PRODUCTION.md)\n", name)
		return nil
	}
	if err == nil {
		fmt.Fprintf(tc.e.stdout, "Its apps' Consul token: campus token tenant %s\n", name)
	}
	return err
}

// revokeToken revokes the tenant's app token, if the registry issues any.
func (tc *tenantCmd) revokeToken(ctx context.Context, reg registry.Registry, name string) error {
	c := tc.creds(reg)
	if c == nil {
		return nil
	}
	if err := c.RevokeTenantToken(ctx, name); err != nil && !errors.Is(err, consul.ErrACLDisabled) {
		return fmt.Errorf("revoke the Consul ACL token of %s: %w", name, err)
	}
	return nil
}

// undoClaim undoes what a create or restore wrote after claiming tenant
// claimed (its database when dropDB, its record, its token) and returns
// cause, prefixed with what failed, saying whether the undo succeeded.
func (tc *tenantCmd) undoClaim(ctx context.Context, reg registry.Registry, st *store.Store, claimed registry.Tenant, failed string, cause error, dropDB bool) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var undoErrs []error
	if dropDB {
		if err := st.Drop(uctx); err != nil {
			undoErrs = append(undoErrs, err)
		}
	}
	if err := reg.PurgeTenant(uctx, claimed.Name, claimed.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		undoErrs = append(undoErrs, err)
	}
	if err := tc.revokeToken(uctx, reg, claimed.Name); err != nil {
		undoErrs = append(undoErrs, err)
	}
	if len(undoErrs) > 0 {
		return fmt.Errorf("%s: %w; undoing it failed too (%v): remove what is left with `campus tenant purge %s`",
			failed, cause, errors.Join(undoErrs...), claimed.Name)
	}
	return fmt.Errorf("%s: %w; nothing was kept", failed, cause)
}
