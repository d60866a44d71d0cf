package tenancy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// Fleet migration (`campus migrate --all`): every tenant's database to
// this binary's schema, with bounded parallelism. A tenant already at the
// schema version is skipped after two reads; a failure stops that tenant
// only; the run can be repeated until everything is migrated.

// MigrateStatus is the outcome for one tenant.
type MigrateStatus string

const (
	MigrateSkipped  MigrateStatus = "skipped"
	MigrateMigrated MigrateStatus = "migrated"
	MigrateFailed   MigrateStatus = "failed"
)

// MigrateResult is one tenant's migration.
type MigrateResult struct {
	Tenant   string
	Status   MigrateStatus
	From, To int
	Took     time.Duration
	Err      error
}

// FleetMigrator migrates many tenants' databases through one client.
type FleetMigrator struct {
	Client       *mongo.Client
	Registry     StateSetter // with Drain: suspends and resumes tenants
	Parallel     int
	Drain        bool
	DrainTimeout time.Duration
	Timeout      time.Duration // per tenant
	Force        bool          // migrate tenants already at the version too
	// Progress is called (serially) after each tenant.
	Progress func(done, total int, r MigrateResult)
	// Warn receives notes about draining.
	Warn io.Writer
	// Before, when set, runs before a tenant is migrated; an error fails
	// that tenant (tests).
	Before func(registry.Tenant) error
}

// StateSetter is the part of the registry draining needs.
type StateSetter interface {
	SetState(ctx context.Context, name string, s registry.State) (registry.Tenant, error)
	Watch(ctx context.Context, after uint64) (registry.Snapshot, error)
}

// Run migrates tenants, at most Parallel at once, and returns one result
// per tenant in the order given.
func (m *FleetMigrator) Run(ctx context.Context, tenants []registry.Tenant) []MigrateResult {
	results := make([]MigrateResult, len(tenants))
	jobs := make(chan int)
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for range max(1, min(m.Parallel, len(tenants))) {
		wg.Go(func() {
			for i := range jobs {
				r := m.one(ctx, tenants[i])
				results[i] = r
				if m.Progress != nil {
					mu.Lock()
					done++
					m.Progress(done, len(tenants), r)
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
				results[j] = MigrateResult{Tenant: tenants[j].Name, Status: MigrateFailed, Err: fmt.Errorf("not started: %w", ctx.Err())}
			}
			break
		}
	}
	close(jobs)
	wg.Wait()
	return results
}

func (m *FleetMigrator) one(ctx context.Context, t registry.Tenant) (r MigrateResult) {
	start := time.Now()
	r = MigrateResult{Tenant: t.Name, Status: MigrateFailed}
	defer func() { r.Took = time.Since(start) }()
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	if err := CheckHasID(t); err != nil {
		r.Err = err
		return r
	}
	st := store.New(m.Client.Database(t.Database), store.Options{})
	// The fast path: stamped for this tenant and at the schema version.
	err := st.CheckTenant(ctx, t.ID)
	switch {
	case err == nil && m.Force:
	case err == nil:
		serr := st.CheckSchema(ctx)
		if serr == nil {
			r.Status, r.From, r.To = MigrateSkipped, store.SchemaVersion, store.SchemaVersion
			return r
		}
		if !errors.Is(serr, store.ErrNotMigrated) {
			r.Err = serr
			return r
		}
	case !errors.Is(err, store.ErrNotStamped):
		r.Err = DatabaseError(t, err)
		return r
	}
	if m.Before != nil {
		if err := m.Before(t); err != nil {
			r.Err = err
			return r
		}
	}
	if m.Drain && t.State == registry.StateActive {
		resume, err := Drain(ctx, m.Registry, t.Name, m.DrainTimeout, m.Warn)
		if err != nil {
			r.Err = fmt.Errorf("drain: %w", err)
			return r
		}
		defer func() {
			if err := resume(); err != nil {
				r.Status, r.Err = MigrateFailed, errors.Join(r.Err, fmt.Errorf("still suspended after the migration (`campus tenant resume %s`): %w", t.Name, err))
			}
		}()
	}
	from, to, err := st.MigrateTenant(ctx, t.ID)
	r.From, r.To = from, to
	if err != nil {
		r.Err = DatabaseError(t, err)
		return r
	}
	r.Status = MigrateMigrated
	return r
}

// Drain suspends an active tenant (its hosts show the maintenance page,
// the supervisor stops its apps) and waits up to timeout for its
// instances to leave the registry; a note goes to warn if they did not.
// resume makes it active again.
func Drain(ctx context.Context, reg StateSetter, name string, timeout time.Duration, warn io.Writer) (resume func() error, err error) {
	if _, err := reg.SetState(ctx, name, registry.StateSuspended); err != nil {
		return nil, fmt.Errorf("suspend: %w", err)
	}
	resume = func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := reg.SetState(rctx, name, registry.StateActive)
		return err
	}
	if !waitNoInstances(ctx, reg, name, timeout) && warn != nil {
		fmt.Fprintf(warn, "note: tenant %s is suspended (not routed), but its apps were still registered after %s (another scheduler runs them); going on\n", name, timeout)
	}
	return resume, nil
}

// waitNoInstances waits until tenant has no instance in the registry, or
// timeout.
func waitNoInstances(ctx context.Context, reg StateSetter, tenant string, timeout time.Duration) bool {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var after uint64
	for {
		snap, err := reg.Watch(wctx, after)
		if err != nil {
			return false
		}
		after = snap.Version
		n := 0
		for _, in := range snap.Instances {
			if in.Tenant == tenant {
				n++
			}
		}
		if n == 0 {
			return true
		}
	}
}

// MigrationTargets are the tenants a fleet migration migrates: every
// tenant but those being created (all), or the named ones, which must
// exist and not be being created.
func (m *Manager) MigrationTargets(ctx context.Context, all bool, names []string) ([]registry.Tenant, error) {
	if !all {
		var out []registry.Tenant
		for _, n := range names {
			t, err := m.Lookup(ctx, n)
			if err != nil {
				return nil, err
			}
			if t.State == registry.StateCreating {
				return nil, &NotServedError{Tenant: t}
			}
			out = append(out, t)
		}
		return out, nil
	}
	ts, err := m.Registry.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	return slices.DeleteFunc(ts, func(t registry.Tenant) bool { return t.State == registry.StateCreating }), nil
}
