package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// `campus migrate --all`: every tenant's database to this binary's schema,
// with bounded parallelism. A tenant already at the schema version is
// skipped after two reads; a failure stops that tenant only; the run can
// be repeated until everything is migrated.

const migrateDesc = `Migrate the databases of every tenant (--all) or of the named ones to this binary's schema
version (` + "`campus manage T migrate`" + ` for many tenants at once), --parallel at a time. Active,
suspended and deleted tenants (data kept) are migrated; tenants being created are not. A tenant whose
database is stamped for its ID and already at the schema version is skipped; a tenant that fails is
reported and stays at its schema version, the others go on; run it again to finish: migrated tenants are skipped.
--force migrates tenants already at the version too (the steps are idempotent).
By default apps keep serving while their database is migrated: the steps of this schema (1: indexes;
2: history and reset-token indexes, is_active set on existing users) are additive, and older apps
running meanwhile do not notice them. --drain suspends each active tenant being
migrated (maintenance page; campus dev's supervisor stops its apps) and resumes it afterwards, for
steps that older apps must not see half done. A progress bar is shown on a terminal, one line per
migrated or failed tenant otherwise, then a summary table.`

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs := newFlags("migrate", "--all | TENANT...", migrateDesc)
	var (
		lo logOptions
		ro registryOptions
		mo mongoOptions
	)
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	all := fs.Bool("all", false, "migrate every tenant")
	parallel := fs.Int("parallel", 4, "tenants migrated at once")
	drain := fs.Bool("drain", false, "suspend each active tenant while its database is migrated, resume it after")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Second, "with --drain: how long to wait for a tenant's apps to stop")
	timeout := fs.Duration("timeout", 30*time.Minute, "time limit for one tenant's migration")
	force := fs.Bool("force", false, "also migrate tenants already at the schema version (its steps are idempotent)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *all == (fs.NArg() > 0) {
		return usageErr("want --all or TENANT names (not both)")
	}
	if *parallel < 1 {
		return usageErr("--parallel must be at least 1")
	}
	reg, _, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	lm := &tenancy.Manager{Registry: reg, Database: mo.address(ro.data), Hooks: hooks, Notes: e.stderr}
	tenants, err := lm.MigrationTargets(ctx, *all, fs.Args())
	if err != nil {
		return describe(err)
	}
	m, err := lm.Migrator(ctx)
	if err != nil {
		return describe(err)
	}
	defer m.Client.Disconnect(context.WithoutCancel(ctx))

	start := time.Now()
	bar := newProgress(e.stderr, isTerminal(e.stderr))
	m.Parallel, m.Drain, m.DrainTimeout, m.Timeout, m.Force, m.Progress = *parallel, *drain, *drainTimeout, *timeout, *force, bar.update
	results := m.Run(ctx, tenants)
	bar.finish()
	return migrateSummary(e.stdout, results, time.Since(start), *parallel)
}

// migrateSummary prints the summary table and returns an error naming
// the failed tenants, if any.
func migrateSummary(w io.Writer, results []tenancy.MigrateResult, took time.Duration, parallel int) error {
	count := map[tenancy.MigrateStatus]int{}
	for _, r := range results {
		count[r.Status]++
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STATUS\tTENANTS\n")
	fmt.Fprintf(tw, "migrated\t%d\n", count[tenancy.MigrateMigrated])
	fmt.Fprintf(tw, "skipped\t%d\t(already at schema version %d)\n", count[tenancy.MigrateSkipped], store.SchemaVersion)
	fmt.Fprintf(tw, "failed\t%d\n", count[tenancy.MigrateFailed])
	tw.Flush()
	fmt.Fprintf(w, "%d tenants in %s (--parallel %d).\n", len(results), took.Round(time.Millisecond), parallel)
	var failed []string
	if count[tenancy.MigrateMigrated]+count[tenancy.MigrateFailed] > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "TENANT\tSTATUS\tFROM\tTO\tTIME\tERROR\n")
		for _, r := range results {
			if r.Status == tenancy.MigrateSkipped {
				continue
			}
			msg := ""
			if r.Err != nil {
				msg = r.Err.Error()
				failed = append(failed, r.Tenant)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", r.Tenant, r.Status, r.From, r.To, r.Took.Round(time.Millisecond), msg)
		}
		tw.Flush()
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d tenants failed to migrate (%s) and stay at their schema version; the others are done. "+
			"Fix the cause and run `campus migrate --all` again: migrated tenants are skipped", len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

// progress shows a bar on a terminal, plain lines otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	start    time.Time
	last     time.Time
	n        map[tenancy.MigrateStatus]int
	done, of int
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, start: time.Now(), n: map[tenancy.MigrateStatus]int{}}
}

func (p *progress) update(done, total int, r tenancy.MigrateResult) {
	p.done, p.of = done, total
	p.n[r.Status]++
	if !p.tty {
		if r.Status != tenancy.MigrateSkipped {
			line := fmt.Sprintf("tenant %s: %s", r.Tenant, r.Status)
			if r.Status == tenancy.MigrateMigrated {
				line += fmt.Sprintf(" from schema version %d to %d", r.From, r.To)
			}
			if r.Err != nil {
				line += ": " + r.Err.Error()
			}
			fmt.Fprintf(p.w, "%s (%s) [%d/%d]\n", line, r.Took.Round(time.Millisecond), done, total)
		}
		return
	}
	if now := time.Now(); done == total || now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	const width = 30
	filled := 0
	if p.of > 0 {
		filled = p.done * width / p.of
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  migrated %d  skipped %d  failed %d  %s ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.of,
		p.n[tenancy.MigrateMigrated], p.n[tenancy.MigrateSkipped], p.n[tenancy.MigrateFailed], time.Since(p.start).Round(100*time.Millisecond))
}

func (p *progress) finish() {
	if p.tty && p.of > 0 {
		p.draw()
		fmt.Fprintln(p.w)
	}
}
