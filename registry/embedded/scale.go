package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero (issue 12): the idle-timeout override is a column of
// tenants; wake requests are rows of their own table, one per tenant,
// numbered by seq. Writing one does not bump meta.version, so a wake never
// makes proxies and supervisors rebuild their tables; WatchWakes polls the
// table at the registry's poll interval instead.

// SetIdleTimeout implements registry.Registry.
func (r *Registry) SetIdleTimeout(ctx context.Context, name, idle string) (registry.Tenant, error) {
	t, err := r.update(ctx, name, func(t registry.Tenant) (registry.Tenant, error) { return registry.CheckSetIdleTimeout(t, idle) })
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("set idle timeout of tenant %q: %w", name, err)
	}
	return t, nil
}

// RequestWake implements registry.Registry.
func (r *Registry) RequestWake(ctx context.Context, tenant string) error {
	if err := registry.ValidateName(tenant); err != nil {
		return fmt.Errorf("wake tenant: %w", err)
	}
	select {
	case <-r.done:
		return errClosed
	default:
	}
	_, err := r.wdb.ExecContext(ctx,
		`INSERT INTO wakes (tenant, seq, at) VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM wakes), ?)
		ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, at = excluded.at`,
		tenant, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("wake tenant %q: %w", tenant, r.dbErr(ctx, "write wake", err))
	}
	return nil
}

// WatchWakes implements registry.Registry.
func (r *Registry) WatchWakes(ctx context.Context, after uint64) ([]registry.Wake, uint64, error) {
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		wakes, cursor, err := r.readWakes(ctx, after)
		if err != nil {
			return nil, after, fmt.Errorf("watch wakes: %w", err)
		}
		if after == 0 {
			return nil, cursor, nil
		}
		if len(wakes) > 0 || cursor < after { // the table was recreated: start again
			return wakes, cursor, nil
		}
		select {
		case <-ctx.Done():
			return nil, after, ctx.Err()
		case <-r.done:
			return nil, after, errClosed
		case <-tick.C:
		}
	}
}

func (r *Registry) readWakes(ctx context.Context, after uint64) ([]registry.Wake, uint64, error) {
	var (
		out    []registry.Wake
		cursor uint64
	)
	err := r.read(ctx, func(tx *sql.Tx) error {
		// The cursor is one more than the last seq seen, so that it is
		// never 0 (which asks for the current cursor).
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM wakes`).Scan(&cursor); err != nil {
			return r.dbErr(ctx, "read wakes", err)
		}
		if after == 0 || cursor <= after {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT tenant, seq, at FROM wakes WHERE seq >= ? ORDER BY seq`, after)
		if err != nil {
			return r.dbErr(ctx, "read wakes", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				w  registry.Wake
				at int64
			)
			if err := rows.Scan(&w.Tenant, &w.Seq, &at); err != nil {
				return r.dbErr(ctx, "read wakes", err)
			}
			w.At = fromNanos(at)
			out = append(out, w)
		}
		return rows.Err()
	})
	return out, cursor, err
}
