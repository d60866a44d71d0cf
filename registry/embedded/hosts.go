package embedded

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// AddHost implements registry.Registry. The hosts table's PRIMARY KEY
// decides who owns a host, across processes, as in CreateTenant; the
// hosts triggers stamp the tenant so watchers see the change.
func (r *Registry) AddHost(ctx context.Context, tenant, host string) (registry.Tenant, error) {
	var t registry.Tenant
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		before, err := loadTenant(ctx, tx, tenant)
		if err != nil {
			return false, err
		}
		after, h, changed, err := registry.CheckAddHost(before, host)
		if err != nil || !changed {
			t = before
			return false, err
		}
		var pos int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(pos), -1) + 1 FROM hosts WHERE tenant = ?`, tenant).Scan(&pos); err != nil {
			return false, r.dbErr(ctx, "next host position of "+tenant, err)
		}
		if err := r.claimHost(ctx, tx, h, tenant, pos); err != nil {
			return false, err
		}
		t = after
		return true, nil
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("add host %q to tenant %q: %w", host, tenant, err)
	}
	return t, nil
}

// RemoveHost implements registry.Registry.
func (r *Registry) RemoveHost(ctx context.Context, tenant, host string) (registry.Tenant, error) {
	var t registry.Tenant
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		before, err := loadTenant(ctx, tx, tenant)
		if err != nil {
			return false, err
		}
		after, h, err := registry.CheckRemoveHost(before, host)
		if err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM hosts WHERE host = ? AND tenant = ?`, h, tenant); err != nil {
			return false, r.dbErr(ctx, "delete host "+h, err)
		}
		t = after
		return true, nil
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("remove host %q from tenant %q: %w", host, tenant, err)
	}
	return t, nil
}
