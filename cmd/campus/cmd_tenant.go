package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/registry"
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
  restore FILE [--as NEW] [--host H] [--display-name D]
                         restore an archive, all or nothing: the same tenant (same
                         ID) after a purge, or with --as a new one with a new ID
  set NAME --idle-timeout D
                         stop the tenant's app after D without requests (0: never;
                         "default": the supervisor's --idle-timeout)
  set NAME --memory SIZE limit the tenant's app to SIZE of memory (like 768MiB;
                         "default": the supervisor's --memory)
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
	m      *tenancy.Manager
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
		memory      string
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
				return tc.create(ctx, fs, hosts, displayName, superuser, email)
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
				return tc.setState(ctx, fs, registry.StateSuspended)
			}},
		"resume": {"NAME", "Resume a suspended tenant.", nil,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.setState(ctx, fs, registry.StateActive)
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
				return tc.delete(ctx, fs, retention, purge, yes)
			}},
		"host": {"add|remove NAME HOST", "Add a host name (custom domain) to a tenant, or remove one that is not its primary host.", nil, (*tenantCmd).host},
		"restore": {"NAME | FILE [--as NEWNAME]", restoreDesc, bf.registerRestore,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.restoreNameOrArchive(ctx, fs, &bf)
			}},
		"backup": {"NAME", backupDesc, bf.registerBackup,
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.backup(ctx, fs, &bf)
			}},
		"set": {"NAME [--idle-timeout D] [--memory SIZE]", "Change a tenant's settings (scale to zero and memory: cmd_tenant_scale.go).",
			func(fs *flag.FlagSet) {
				fs.StringVar(&idleTimeout, "idle-timeout", "", `stop the tenant's app after this long without a request (like 15m; 0: never; "default": the supervisor's --idle-timeout)`)
				fs.StringVar(&memory, "memory", "", `memory limit of the tenant's app (like 768MiB or 2GiB; "default": the supervisor's --memory); a change restarts the app`)
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.set(ctx, reg, fs, idleTimeout, memory)
			}},
		"purge": {"NAME | --expired", "Drop the database of a deleted tenant and remove the tenant, releasing its name and hosts (cannot be undone). " +
			"With --expired, do so for every deleted tenant whose retention has ended, without asking (for cron). " +
			"Also removes what an interrupted `campus tenant create` left.",
			func(fs *flag.FlagSet) {
				fs.BoolVar(&expired, "expired", false, "purge every deleted tenant whose retention has ended")
				fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
			},
			func(tc *tenantCmd, ctx context.Context, reg registry.Registry, fs *flag.FlagSet) error {
				return tc.purge(ctx, fs, expired, yes)
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
	if args[0] == "create" { // usage errors before a registry is opened (or made)
		if _, _, err := tc.checkCreate(fs, hosts, displayName, superuser); err != nil {
			return err
		}
	}
	reg, logger, err := tc.ro.openLogged(ctx, e, &tc.lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	tc.m = tc.manager(reg, logger)
	return s.run(tc, ctx, reg, fs)
}

// manager is the tenant lifecycle over reg and the database of the
// command's flags (or what `campus dev` recorded in --data).
func (tc *tenantCmd) manager(reg registry.Registry, logger *slog.Logger) *tenancy.Manager {
	creds, _ := reg.(tenancy.Credentials) // Consul issues per-tenant tokens
	return &tenancy.Manager{Registry: reg, Database: tc.mo.address(tc.ro.data), Credentials: creds,
		Hooks: hooks, Logger: logger, Notes: tc.e.stderr, Version: version}
}

// hooks stop lifecycle operations between their steps in the in-process
// tests of this package; zero otherwise.
var hooks tenancy.Hooks

func oneName(fs *flag.FlagSet) (string, error) {
	if fs.NArg() != 1 {
		return "", usageErr("want exactly one tenant NAME, got %d arguments", fs.NArg())
	}
	return fs.Arg(0), nil
}

// create registers a tenant all or nothing (tenancy.Manager.Create):
// every check first, then a claim in state creating, the database and
// superuser, the token, and activation; a failure after the claim undoes
// it all.
func (tc *tenantCmd) create(ctx context.Context, fs *flag.FlagSet, hosts []string, displayName, superuser, email string) error {
	name, password, err := tc.checkCreate(fs, hosts, displayName, superuser)
	if err != nil {
		return err
	}
	public, err := tc.pu.resolve(tc.ro.data)
	if err != nil {
		return err
	}
	return tc.createTenant(ctx, public, name, password, hosts, displayName, superuser, email)
}

// checkCreate checks the arguments of `tenant create` before anything is
// opened or written, wording each problem with the command to type instead.
func (tc *tenantCmd) checkCreate(fs *flag.FlagSet, hosts []string, displayName, superuser string) (name, password string, err error) {
	if name, err = oneName(fs); err != nil {
		return "", "", err
	}
	embedded := tc.ro.embedded(tc.e)
	// retry is this command line again with a corrected name or host.
	retry := func(name string, hosts []string) string {
		line := cliName + " tenant create " + name
		for _, h := range hosts {
			line += " --host " + shellQuote(h)
		}
		if displayName != "" {
			line += " --display-name " + shellQuote(displayName)
		}
		return line
	}
	if err := registry.ValidateName(name); err != nil {
		return "", "", tenantNameError(name, err, func(s string) string {
			if len(hosts) == 0 {
				hosts = []string{exampleHost(s, embedded)}
			}
			if displayName == "" && strings.ContainsAny(name, " ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				displayName = name // what was typed is the school's name
			}
			return retry(s, hosts)
		})
	}
	if len(hosts) == 0 {
		return "", "", missingHostError(name, embedded)
	}
	if err := checkHostArgs(hosts, func(i int, h string) string {
		fixed := slices.Clone(hosts)
		fixed[i] = h
		return retry(name, fixed)
	}); err != nil {
		return "", "", err
	}
	password = ""
	if superuser != "" {
		if password = tc.e.getenv(superuserPasswordEnv); password == "" {
			return "", "", usageErr("--superuser needs the new admin's password in $%s (never a flag: ps would show it to every user), "+
				"or leave --superuser out and run `%s manage %s createsuperuser` after the create", superuserPasswordEnv, cliName, name)
		}
	}
	return name, password, nil
}

func (tc *tenantCmd) createTenant(ctx context.Context, public publicURL, name, password string, hosts []string, displayName, superuser, email string) error {
	c, err := tc.m.Create(ctx, tenancy.NewTenant{Name: name, Hosts: hosts, DisplayName: displayName,
		Superuser: superuser, SuperuserEmail: email, SuperuserPassword: password})
	if err != nil {
		return err
	}
	t := c.Tenant
	tc.printToken(t.Name, c.Token)
	fmt.Fprintf(tc.e.stdout, "Created tenant %s (%s), ID %s, database %q, hosts %s.\n", t.Name, t.DisplayName, t.ID, t.Database, strings.Join(t.Hosts, ", "))
	if superuser != "" {
		fmt.Fprintf(tc.e.stdout, "Superuser %q can log in at %s\n", superuser, public.TenantURL(t.PrimaryHost, "/admin/"))
	} else {
		fmt.Fprintf(tc.e.stdout, "Next: %s manage %s createsuperuser\n", cliName, t.Name)
	}
	return nil
}

// printToken says what happened to a tenant's Consul ACL token.
func (tc *tenantCmd) printToken(name string, r tenancy.TokenResult) {
	switch r {
	case tenancy.TokenACLDisabled:
		fmt.Fprintf(tc.e.stderr, "warning: Consul runs without ACLs, so any process that reaches it can register an app for %s; enable ACLs (docs/PRODUCTION.md)\n", name)
	case tenancy.TokenIssued:
		fmt.Fprintf(tc.e.stdout, "Its apps' Consul token: campus token tenant %s\n", name)
	}
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
	kills := memoryKills(snap)
	defIdle, defMemory := tc.supervisorDefaults()
	fmt.Fprintln(w, "NAME\tSTATE\tRUN\tINSTANCES\tIDLE TIMEOUT\tMEMORY\tMEM KILLS\tDATABASE\tHOSTS\tID\tDISPLAY NAME")
	for _, t := range tenants {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.Name, t.State, run(t), up[t.Name], idleTimeoutLabel(t, defIdle),
			memoryLabel(t, defMemory), kills[t.Name], t.Database, strings.Join(t.Hosts, ","), t.ID, t.DisplayName)
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
		return &tenancy.UnknownTenantError{Name: name}
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
	defIdle, defMemory := tc.supervisorDefaults()
	fmt.Fprintf(w, "Idle timeout:\t%s\nMemory limit:\t%s\n", inForce(t.IdleTimeout, idleTimeoutLabel(*t, defIdle)),
		inForce(t.Memory, memoryLabel(*t, defMemory)))
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

func (tc *tenantCmd) setState(ctx context.Context, fs *flag.FlagSet, state registry.State) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := tc.m.SetState(ctx, name, state)
	if err != nil {
		return err
	}
	fmt.Fprintf(tc.e.stdout, "Tenant %s is now %s.\n", t.Name, t.State)
	return nil
}

func (tc *tenantCmd) delete(ctx context.Context, fs *flag.FlagSet, retention time.Duration, purge, yes bool) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	if retention <= 0 {
		return usageErr("--retention must be positive; --purge-data removes a tenant at once")
	}
	t, err := tc.m.Lookup(ctx, name)
	if err != nil {
		return err
	}
	if purge && !yes {
		if err := tc.confirm(t, "This drops database %q with all of %s's students and users. Type the tenant name to confirm: ", "deleted"); err != nil {
			return err
		}
	}
	if t, err = tc.m.Delete(ctx, t, retention, purge); err != nil {
		return err
	}
	if purge {
		tc.printPurged(t)
		return nil
	}
	fmt.Fprintf(tc.e.stdout, "Deleted tenant %s (ID %s): it is no longer served and its hosts answer 404.\n", t.Name, t.ID)
	fmt.Fprintf(tc.e.stdout, "Database %q is kept until %s; hosts %s and the name stay reserved for it until then.\n",
		t.Database, t.PurgeAfter.Format(time.RFC3339), strings.Join(t.Hosts, ", "))
	fmt.Fprintf(tc.e.stdout, "Undo: campus tenant restore %s    Remove now: campus tenant purge %s\n", t.Name, t.Name)
	return nil
}

// confirm asks the operator to type t's name (prompt names t's database
// and name); anything else is "not confirmed; nothing was <what>".
func (tc *tenantCmd) confirm(t registry.Tenant, prompt, what string) error {
	ans, err := newPrompter(tc.e).line(fmt.Sprintf(prompt, t.Database, t.Name))
	var none *noAnswerError
	if errors.As(err, &none) {
		return fmt.Errorf("not confirmed (no answer on standard input); nothing was %s. Without a terminal, add --yes", what)
	}
	if err != nil {
		return err
	}
	if ans != t.Name {
		return fmt.Errorf("not confirmed; nothing was %s", what)
	}
	return nil
}

func (tc *tenantCmd) restore(ctx context.Context, fs *flag.FlagSet) error {
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, token, err := tc.m.Restore(ctx, name)
	var unknown *tenancy.UnknownTenantError
	if errors.As(err, &unknown) {
		return fmt.Errorf("unknown tenant %q (a purged tenant cannot be restored)", name)
	}
	if t.ID != "" {
		fmt.Fprintf(tc.e.stdout, "Restored tenant %s (ID %s): served again at %s with its data in database %q.\n",
			t.Name, t.ID, strings.Join(t.Hosts, ", "), t.Database)
		tc.printToken(t.Name, token)
	}
	return err
}

func (tc *tenantCmd) purge(ctx context.Context, fs *flag.FlagSet, expired, yes bool) error {
	if expired {
		if err := noArgs(fs); err != nil {
			return usageErr("--expired takes no NAME")
		}
		purged, err := tc.m.PurgeExpired(ctx)
		for _, t := range purged {
			tc.printPurged(t)
		}
		fmt.Fprintf(tc.e.stdout, "Purged %d tenants whose retention had ended.\n", len(purged))
		return err
	}
	name, err := oneName(fs)
	if err != nil {
		return err
	}
	t, err := tc.m.Lookup(ctx, name)
	if err != nil {
		return err
	}
	if err := tenancy.CanPurge(t); err != nil {
		return err
	}
	if !yes {
		if err := tc.confirm(t, "This drops database %q with all of %s's students and users, and releases its hosts. Type the tenant name to confirm: ", "purged"); err != nil {
			return err
		}
	}
	if err := tc.m.Purge(ctx, t); err != nil {
		return err
	}
	tc.printPurged(t)
	return nil
}

func (tc *tenantCmd) printPurged(t registry.Tenant) {
	fmt.Fprintf(tc.e.stdout, "Purged tenant %s (ID %s): database %q dropped; name and hosts %s are free.\n",
		t.Name, t.ID, t.Database, strings.Join(t.Hosts, ", "))
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
