package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
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

// migrateStatus is the outcome for one tenant.
type migrateStatus string

const (
	migrateSkipped  migrateStatus = "skipped"
	migrateMigrated migrateStatus = "migrated"
	migrateFailed   migrateStatus = "failed"
)

type migrateResult struct {
	Tenant   string
	Status   migrateStatus
	From, To int
	Took     time.Duration
	Err      error
}

// fleetMigrator migrates many tenants' databases through one client.
type fleetMigrator struct {
	client       *mongo.Client
	reg          registry.Registry
	parallel     int
	drain        bool
	drainTimeout time.Duration
	timeout      time.Duration // per tenant
	force        bool          // migrate tenants already at the version too
	// progress is called (serially) after each tenant.
	progress func(done, total int, r migrateResult)
	// warn receives notes about draining.
	warn io.Writer
}

// migrateHooks let tests stop a migration; nil otherwise.
var migrateHooks struct {
	before func(registry.Tenant) error // an error fails that tenant
}

// run migrates tenants, at most m.parallel at once, and returns one result
// per tenant in the order given.
func (m *fleetMigrator) run(ctx context.Context, tenants []registry.Tenant) []migrateResult {
	results := make([]migrateResult, len(tenants))
	jobs := make(chan int)
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for range max(1, min(m.parallel, len(tenants))) {
		wg.Go(func() {
			for i := range jobs {
				r := m.one(ctx, tenants[i])
				results[i] = r
				if m.progress != nil {
					mu.Lock()
					done++
					m.progress(done, len(tenants), r)
					mu.Unlock()
				}
			}
		})
	}
	for i := range tenants {
		sent := false
		if ctx.Err() == nil {
			select {
			case jobs <- i:
				sent = true
			case <-ctx.Done():
			}
		}
		if !sent {
			for j := i; j < len(tenants); j++ {
				results[j] = migrateResult{Tenant: tenants[j].Name, Status: migrateFailed, Err: fmt.Errorf("not started: %w", ctx.Err())}
			}
			break
		}
	}
	close(jobs)
	wg.Wait()
	return results
}

func (m *fleetMigrator) one(ctx context.Context, t registry.Tenant) (r migrateResult) {
	start := time.Now()
	r = migrateResult{Tenant: t.Name, Status: migrateFailed}
	defer func() { r.Took = time.Since(start) }()
	if m.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	if err := checkHasID(t); err != nil {
		r.Err = err
		return r
	}
	st := store.New(m.client.Database(t.Database), store.Options{})
	// The fast path: stamped for this tenant and at the schema version.
	err := st.CheckTenant(ctx, t.ID)
	switch {
	case err == nil && m.force:
	case err == nil:
		serr := st.CheckSchema(ctx)
		if serr == nil {
			r.Status, r.From, r.To = migrateSkipped, store.SchemaVersion, store.SchemaVersion
			return r
		}
		if !errors.Is(serr, store.ErrNotMigrated) {
			r.Err = serr
			return r
		}
	case !errors.Is(err, store.ErrNotStamped):
		r.Err = tenantDatabaseError(t, err)
		return r
	}
	if h := migrateHooks.before; h != nil {
		if err := h(t); err != nil {
			r.Err = err
			return r
		}
	}
	if m.drain && t.State == registry.StateActive {
		if _, err := m.reg.SetState(ctx, t.Name, registry.StateSuspended); err != nil {
			r.Err = fmt.Errorf("drain: suspend: %w", err)
			return r
		}
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, err := m.reg.SetState(rctx, t.Name, registry.StateActive); err != nil {
				r.Status, r.Err = migrateFailed, errors.Join(r.Err, fmt.Errorf("still suspended after the migration (`campus tenant resume %s`): %w", t.Name, err))
			}
		}()
		if !waitNoInstances(ctx, m.reg, t.Name, m.drainTimeout) && m.warn != nil {
			fmt.Fprintf(m.warn, "note: tenant %s is suspended, but its apps were still registered after %s; migrating anyway\n", t.Name, m.drainTimeout)
		}
	}
	from, to, err := st.MigrateTenant(ctx, t.ID)
	r.From, r.To = from, to
	if err != nil {
		r.Err = tenantDatabaseError(t, err)
		return r
	}
	r.Status = migrateMigrated
	return r
}

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
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	reg, err := ro.open(ctx, e, logger, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	tenants, err := migrationTargets(ctx, reg, *all, fs.Args())
	if err != nil {
		return err
	}
	uri, err := mo.resolve()
	if err != nil {
		return err
	}
	client, err := connectMongo(ctx, uri)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))

	start := time.Now()
	bar := newProgress(e.stderr, isTerminal(e.stderr))
	m := &fleetMigrator{client: client, reg: reg, parallel: *parallel, drain: *drain, drainTimeout: *drainTimeout,
		timeout: *timeout, force: *force, progress: bar.update, warn: e.stderr}
	results := m.run(ctx, tenants)
	bar.finish()
	return migrateSummary(e.stdout, results, time.Since(start), *parallel)
}

// migrationTargets are the tenants to migrate, sorted by name.
func migrationTargets(ctx context.Context, reg registry.Registry, all bool, names []string) ([]registry.Tenant, error) {
	if !all {
		var out []registry.Tenant
		for _, n := range names {
			t, err := lookUp(ctx, reg, n)
			if err != nil {
				return nil, err
			}
			if t.State == registry.StateCreating {
				return nil, notServedError(t)
			}
			out = append(out, t)
		}
		return out, nil
	}
	ts, err := reg.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	return slices.DeleteFunc(ts, func(t registry.Tenant) bool { return t.State == registry.StateCreating }), nil
}

// migrateSummary prints the summary table and returns an error naming
// the failed tenants, if any.
func migrateSummary(w io.Writer, results []migrateResult, took time.Duration, parallel int) error {
	count := map[migrateStatus]int{}
	for _, r := range results {
		count[r.Status]++
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STATUS\tTENANTS\n")
	fmt.Fprintf(tw, "migrated\t%d\n", count[migrateMigrated])
	fmt.Fprintf(tw, "skipped\t%d\t(already at schema version %d)\n", count[migrateSkipped], store.SchemaVersion)
	fmt.Fprintf(tw, "failed\t%d\n", count[migrateFailed])
	tw.Flush()
	fmt.Fprintf(w, "%d tenants in %s (--parallel %d).\n", len(results), took.Round(time.Millisecond), parallel)
	var failed []string
	if count[migrateMigrated]+count[migrateFailed] > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "TENANT\tSTATUS\tFROM\tTO\tTIME\tERROR\n")
		for _, r := range results {
			if r.Status == migrateSkipped {
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
	n        map[migrateStatus]int
	done, of int
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, start: time.Now(), n: map[migrateStatus]int{}}
}

func (p *progress) update(done, total int, r migrateResult) {
	p.done, p.of = done, total
	p.n[r.Status]++
	if !p.tty {
		if r.Status != migrateSkipped {
			line := fmt.Sprintf("tenant %s: %s", r.Tenant, r.Status)
			if r.Status == migrateMigrated {
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
		p.n[migrateMigrated], p.n[migrateSkipped], p.n[migrateFailed], time.Since(p.start).Round(100*time.Millisecond))
}

func (p *progress) finish() {
	if p.tty && p.of > 0 {
		p.draw()
		fmt.Fprintln(p.w)
	}
}
