package tenancy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// The ID-stamp policy: a tenant's database is stamped with the tenant's
// ID, and no process serves, changes, backs up or drops a database
// stamped for another ID, such as an earlier school of the same name.

// CheckHasID refuses a tenant record from before tenant IDs that could
// not be given one (Consul, read-only token).
func CheckHasID(t registry.Tenant) error {
	if t.ID == "" {
		return fmt.Errorf("tenant %q has no ID yet (registered before tenant IDs existed); "+
			"`campus tenant show %s` with write access to the registry assigns one", t.Name, t.Name)
	}
	return nil
}

// CheckDatabase is the start-up check of `campus app` and `campus
// manage`: the database must be stamped with the tenant's ID.
func CheckDatabase(ctx context.Context, st *store.Store, t registry.Tenant) error {
	if err := CheckHasID(t); err != nil {
		return err
	}
	if err := st.CheckTenant(ctx, t.ID); err != nil {
		return DatabaseError(t, err)
	}
	return nil
}

// DatabaseError explains a stamp that does not match.
func DatabaseError(t registry.Tenant, err error) error {
	var tm *store.TenantMismatchError
	switch {
	case errors.As(err, &tm):
		return fmt.Errorf("refusing database %q for tenant %q (ID %s), which is neither served nor changed: %w",
			t.Database, t.Name, t.ID, tm)
	case errors.Is(err, store.ErrNotStamped):
		return fmt.Errorf("database %q of tenant %q is not stamped with the tenant's ID %s; stamp it with `campus manage %s migrate` (or start the app with --migrate): %w",
			t.Database, t.Name, t.ID, t.Name, store.ErrNotStamped)
	}
	return fmt.Errorf("tenant %q: %w", t.Name, err)
}

// NoDatabaseError is an app started for a school whose database holds
// nothing: it was purged (or never made by a create).
type NoDatabaseError struct{ Tenant registry.Tenant }

func (e *NoDatabaseError) Error() string {
	return fmt.Sprintf("database %q of tenant %q holds nothing: a school's database is made by `campus tenant create` or `campus tenant restore`, not by its app (was %s purged?)",
		e.Tenant.Database, e.Tenant.Name, e.Tenant.Name)
}

// NotServedError is a tenant that is not active, asked for as if it were.
type NotServedError struct{ Tenant registry.Tenant }

func (e *NotServedError) Error() string {
	t := e.Tenant
	switch t.State {
	case registry.StateDeleted:
		return fmt.Sprintf("tenant %q is deleted (data kept until %s); bring it back with `campus tenant restore %s`",
			t.Name, t.PurgeAfter.Format(time.RFC3339), t.Name)
	case registry.StateCreating:
		return fmt.Sprintf("tenant %q is still being created (if its create was interrupted: `campus tenant purge %s`)", t.Name, t.Name)
	}
	return fmt.Sprintf("tenant %q is %s; resume it with `campus tenant resume %s`", t.Name, t.State, t.Name)
}

// MigrateDatabase migrates t's database at uri to this binary's schema,
// stamping it with t's ID when it has no stamp yet.
func MigrateDatabase(ctx context.Context, uri string, t registry.Tenant, logger *slog.Logger) error {
	if err := CheckHasID(t); err != nil {
		return err
	}
	st, err := OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	return migrateStore(ctx, st, t, nil, logger)
}

// migrateStore is MigrateDatabase on an open store: at a start, so a
// database this binary has migrated before is not checked again
// (store.StartTenant); unstamped, when not nil, is asked before an
// unstamped database is stamped.
func migrateStore(ctx context.Context, st *store.Store, t registry.Tenant, unstamped func() error, logger *slog.Logger) error {
	var refused error // unstamped's answer, returned as it is
	from, to, err := st.StartTenant(ctx, t.ID, func() error {
		if unstamped != nil {
			refused = unstamped()
		}
		return refused
	})
	if refused != nil {
		return refused
	}
	if errors.Is(err, store.ErrRegNoConflicts) {
		// Migrated except for one index: serve, and say what to do.
		logger.Warn("tenant database migrated, but registration numbers differ only in case; serving anyway: resolve them, then run `campus manage "+t.Name+" migrate`",
			"tenant", t.Name, "database", t.Database, "report", err.Error())
		err = nil
	}
	if err != nil {
		return DatabaseError(t, fmt.Errorf("migrate database %q: %w", t.Database, err))
	}
	if from != to {
		logger.Info("migrated tenant database", "tenant", t.Name, "database", t.Database, "from", from, "to", to)
	}
	return nil
}

// MigrateServed migrates the database of every routed tenant (active or
// suspended) at uri, as `campus dev` does when it starts, and returns
// every tenant. A tenant whose database is another tenant's is logged and
// left alone (its app refuses to start too); any other failure stops.
func (m *Manager) MigrateServed(ctx context.Context, uri string) ([]registry.Tenant, error) {
	tenants, err := m.Registry.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if !t.State.Routed() { // creating or deleted: not ours to migrate
			continue
		}
		if t.ID == "" { // registered before tenant IDs: reading it assigns one
			withID, err := m.Registry.Tenant(ctx, t.Name)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: %w", t.Name, err)
			}
			t = withID
		}
		if err := MigrateDatabase(ctx, uri, t, m.logger()); err != nil {
			if errors.Is(err, store.ErrWrongTenant) {
				m.logger().Error("not serving tenant", "tenant", t.Name, "err", err)
				continue
			}
			return nil, err
		}
	}
	return tenants, nil
}

// OpenServed opens the database of t for its app: t must be active and
// have an ID; with migrate its database is migrated (and stamped when
// unstamped) first; then it must be stamped with t's ID and at this
// binary's schema.
func OpenServed(ctx context.Context, uri string, t registry.Tenant, migrate bool, logger *slog.Logger) (*store.Store, error) {
	if t.State != registry.StateActive {
		return nil, &NotServedError{Tenant: t}
	}
	if err := CheckHasID(t); err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, uri, t.Database)
	if err != nil {
		return nil, err
	}
	if err := checkServed(ctx, st, t, migrate, logger); err != nil {
		st.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return st, nil
}

// checkServed is what OpenServed does on the open store of t.
func checkServed(ctx context.Context, st *store.Store, t registry.Tenant, migrate bool, logger *slog.Logger) error {
	if !migrate {
		if err := CheckDatabase(ctx, st, t); err != nil {
			return err
		}
		if err := st.CheckSchema(ctx); err != nil {
			return fmt.Errorf("database %q of tenant %q: %w", t.Database, t.Name, err)
		}
		return nil
	}
	// An app never makes its school's database: create and restore do,
	// stamped, before the school is active. An empty one is a school
	// purged while this app was starting (its record read just before):
	// stamping it would bring the purged school's database back, stamped,
	// in the way of its restore. A stamped database is not empty, so only
	// an unstamped one is looked at. The migration refuses a database
	// stamped for another tenant, and leaves the database at this
	// binary's schema.
	return migrateStore(ctx, st, t, func() error {
		if empty, err := st.Empty(ctx); err != nil {
			return err
		} else if empty {
			return &NoDatabaseError{Tenant: t}
		}
		return nil
	}, logger)
}
