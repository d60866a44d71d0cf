package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/campus-saas/campus/registry"
)

// write runs fn in a BEGIN IMMEDIATE transaction. When fn reports a
// change, the version is bumped in the same transaction and, after the
// commit, this handle's watchers are woken.
func (r *Registry) write(ctx context.Context, fn func(tx *sql.Tx) (changed bool, err error)) error {
	select {
	case <-r.done:
		return errClosed
	default:
	}
	tx, err := r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return r.dbErr(ctx, "begin write", err)
	}
	defer tx.Rollback()
	changed, err := fn(tx)
	if err != nil {
		return err
	}
	if !changed {
		return nil // the rollback ends the transaction
	}
	var v uint64
	if err := tx.QueryRowContext(ctx, `UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v); err != nil {
		return r.dbErr(ctx, "bump version", err)
	}
	if err := tx.Commit(); err != nil {
		return r.dbErr(ctx, "commit", err)
	}
	r.advance(v)
	return nil
}

// dbErr wraps a database error; a lock held too long by another process
// becomes registry.ErrConflict, a finished context its own error.
func (r *Registry) dbErr(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	if isBusy(err) {
		return fmt.Errorf("%s: %w: database busy: %v", what, registry.ErrConflict, err)
	}
	select {
	case <-r.done:
		return fmt.Errorf("%s: %w", what, errClosed)
	default:
	}
	return fmt.Errorf("%s: %w", what, err)
}

// CreateTenant implements registry.Registry.
func (r *Registry) CreateTenant(ctx context.Context, t registry.Tenant) (registry.Tenant, error) {
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %q: %w", t.Name, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	t.CreatedAt = time.Unix(0, t.CreatedAt.UnixNano()).UTC() // as it reads back
	t.Hosts = append([]string(nil), t.Hosts...)
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO tenants (name, display_name, primary_host, db_name, state, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.Name, t.DisplayName, t.PrimaryHost, t.Database, string(t.State), t.CreatedAt.UnixNano())
		if isUniqueViolation(err) {
			return false, fmt.Errorf("tenant %q: %w", t.Name, registry.ErrExists)
		}
		if err != nil {
			return false, r.dbErr(ctx, "insert tenant", err)
		}
		// The PRIMARY KEY on host decides who owns it, across processes.
		for i, h := range t.Hosts {
			_, err := tx.ExecContext(ctx, `INSERT INTO hosts (host, tenant, pos) VALUES (?, ?, ?)`, h, t.Name, i)
			if isUniqueViolation(err) {
				var owner string
				if err := tx.QueryRowContext(ctx, `SELECT tenant FROM hosts WHERE host = ?`, h).Scan(&owner); err != nil {
					return false, r.dbErr(ctx, "find owner of host "+h, err)
				}
				return false, &registry.HostTakenError{Host: h, Owner: owner}
			}
			if err != nil {
				return false, r.dbErr(ctx, "insert host "+h, err)
			}
		}
		return true, nil
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %q: %w", t.Name, err)
	}
	return t, nil
}

// Tenant implements registry.Registry.
func (r *Registry) Tenant(ctx context.Context, name string) (registry.Tenant, error) {
	var t registry.Tenant
	err := r.read(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = loadTenant(ctx, tx, name)
		return err
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("tenant %q: %w", name, err)
	}
	return t, nil
}

// Tenants implements registry.Registry.
func (r *Registry) Tenants(ctx context.Context) ([]registry.Tenant, error) {
	s, err := r.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	// The snapshot may be shared; the caller gets its own slices.
	out := make([]registry.Tenant, len(s.Tenants))
	for i, t := range s.Tenants {
		t.Hosts = append([]string(nil), t.Hosts...)
		out[i] = t
	}
	return out, nil
}

// SetState implements registry.Registry.
func (r *Registry) SetState(ctx context.Context, name string, state registry.State) (registry.Tenant, error) {
	if !state.Valid() {
		return registry.Tenant{}, fmt.Errorf("set state of tenant %q: %w", name,
			&registry.InvalidError{Field: "state", Msg: fmt.Sprintf("%q is not active or suspended", state)})
	}
	var t registry.Tenant
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `UPDATE tenants SET state = ? WHERE name = ? AND state != ?`, string(state), name, string(state))
		if err != nil {
			return false, r.dbErr(ctx, "update state", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, r.dbErr(ctx, "update state", err)
		}
		t, err = loadTenant(ctx, tx, name) // ErrNotFound when there is none
		return n > 0, err
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("set state of tenant %q: %w", name, err)
	}
	return t, nil
}

// DeleteTenant implements registry.Registry. Deleting an unknown tenant is
// an error wrapping registry.ErrNotFound.
func (r *Registry) DeleteTenant(ctx context.Context, name string) error {
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM hosts WHERE tenant = ?`, name); err != nil {
			return false, r.dbErr(ctx, "release hosts", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE name = ?`, name)
		if err != nil {
			return false, r.dbErr(ctx, "delete tenant", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, r.dbErr(ctx, "delete tenant", err)
		}
		if n == 0 {
			return false, registry.ErrNotFound
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("delete tenant %q: %w", name, err)
	}
	return nil
}

// RegisterInstance implements registry.Registry. Registering an instance
// exactly as stored changes nothing and wakes no watcher.
func (r *Registry) RegisterInstance(ctx context.Context, in registry.Instance) error {
	if err := validateInstance(in); err != nil {
		return fmt.Errorf("register instance %q: %w", in.ID, err)
	}
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO instances (id, tenant, addr, healthy) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, addr = excluded.addr, healthy = excluded.healthy
			WHERE tenant != excluded.tenant OR addr != excluded.addr OR healthy != excluded.healthy`,
			in.ID, in.Tenant, in.Addr, in.Healthy)
		if err != nil {
			return false, r.dbErr(ctx, "upsert instance", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, r.dbErr(ctx, "upsert instance", err)
		}
		return n > 0, nil
	})
	if err != nil {
		return fmt.Errorf("register instance %q of tenant %q: %w", in.ID, in.Tenant, err)
	}
	return nil
}

// DeregisterInstance implements registry.Registry.
func (r *Registry) DeregisterInstance(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("deregister instance: %w", &registry.InvalidError{Field: "id", Msg: "empty"})
	}
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM instances WHERE id = ?`, id)
		if err != nil {
			return false, r.dbErr(ctx, "delete instance", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, r.dbErr(ctx, "delete instance", err)
		}
		return n > 0, nil
	})
	if err != nil {
		return fmt.Errorf("deregister instance %q: %w", id, err)
	}
	return nil
}

func validateInstance(in registry.Instance) error {
	if in.ID == "" || len(in.ID) > 200 {
		return &registry.InvalidError{Field: "id", Msg: "must be 1-200 characters"}
	}
	for _, c := range in.ID {
		if c < 0x21 || c == 0x7f {
			return &registry.InvalidError{Field: "id", Msg: fmt.Sprintf("%q contains a space or control character", in.ID)}
		}
	}
	if err := registry.ValidateName(in.Tenant); err != nil {
		return &registry.InvalidError{Field: "tenant", Msg: fmt.Sprintf("%q is not a tenant name", in.Tenant)}
	}
	host, port, err := net.SplitHostPort(in.Addr)
	if err != nil || host == "" {
		return &registry.InvalidError{Field: "addr", Msg: fmt.Sprintf("%q is not host:port", in.Addr)}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return &registry.InvalidError{Field: "addr", Msg: fmt.Sprintf("%q has a bad port", in.Addr)}
	}
	return nil
}

// read runs fn in a read transaction: one consistent view of the file.
func (r *Registry) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := r.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return r.dbErr(ctx, "begin read", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

func loadTenant(ctx context.Context, tx *sql.Tx, name string) (registry.Tenant, error) {
	var (
		t     registry.Tenant
		state string
		ns    int64
	)
	err := tx.QueryRowContext(ctx,
		`SELECT name, display_name, primary_host, db_name, state, created_at FROM tenants WHERE name = ?`, name).
		Scan(&t.Name, &t.DisplayName, &t.PrimaryHost, &t.Database, &state, &ns)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Tenant{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("read tenant: %w", err)
	}
	t.State = registry.State(state)
	t.CreatedAt = time.Unix(0, ns).UTC()
	rows, err := tx.QueryContext(ctx, `SELECT host FROM hosts WHERE tenant = ? ORDER BY pos`, name)
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("read hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return registry.Tenant{}, fmt.Errorf("read hosts: %w", err)
		}
		t.Hosts = append(t.Hosts, h)
	}
	if err := rows.Err(); err != nil {
		return registry.Tenant{}, fmt.Errorf("read hosts: %w", err)
	}
	return t, nil
}

// Snapshot implements registry.Registry. Snapshots are cached by version:
// while nothing changes, callers share one (they must not modify it).
func (r *Registry) Snapshot(ctx context.Context) (registry.Snapshot, error) {
	var s registry.Snapshot
	err := r.read(ctx, func(tx *sql.Tx) error {
		var v uint64
		if err := tx.QueryRowContext(ctx, `SELECT version FROM meta WHERE id = 1`).Scan(&v); err != nil {
			return r.dbErr(ctx, "read version", err)
		}
		r.mu.Lock()
		cached := r.cache
		r.mu.Unlock()
		if cached != nil && cached.Version == v {
			s = *cached
			return nil
		}
		var err error
		s, err = loadSnapshot(ctx, tx, v)
		return err
	})
	if err != nil {
		return registry.Snapshot{}, fmt.Errorf("registry snapshot: %w", err)
	}
	r.mu.Lock()
	if r.cache == nil || s.Version > r.cache.Version {
		c := s
		r.cache = &c
	}
	r.mu.Unlock()
	r.advance(s.Version)
	return s, nil
}

func loadSnapshot(ctx context.Context, tx *sql.Tx, version uint64) (registry.Snapshot, error) {
	s := registry.Snapshot{Version: version, Tenants: []registry.Tenant{}, Instances: []registry.Instance{}}
	rows, err := tx.QueryContext(ctx,
		`SELECT name, display_name, primary_host, db_name, state, created_at FROM tenants ORDER BY name`)
	if err != nil {
		return s, fmt.Errorf("read tenants: %w", err)
	}
	index := map[string]int{}
	for rows.Next() {
		var (
			t     registry.Tenant
			state string
			ns    int64
		)
		if err := rows.Scan(&t.Name, &t.DisplayName, &t.PrimaryHost, &t.Database, &state, &ns); err != nil {
			rows.Close()
			return s, fmt.Errorf("read tenants: %w", err)
		}
		t.State = registry.State(state)
		t.CreatedAt = time.Unix(0, ns).UTC()
		index[t.Name] = len(s.Tenants)
		s.Tenants = append(s.Tenants, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read tenants: %w", err)
	}

	rows, err = tx.QueryContext(ctx, `SELECT host, tenant FROM hosts ORDER BY tenant, pos`)
	if err != nil {
		return s, fmt.Errorf("read hosts: %w", err)
	}
	for rows.Next() {
		var h, tenant string
		if err := rows.Scan(&h, &tenant); err != nil {
			rows.Close()
			return s, fmt.Errorf("read hosts: %w", err)
		}
		if i, ok := index[tenant]; ok {
			s.Tenants[i].Hosts = append(s.Tenants[i].Hosts, h)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read hosts: %w", err)
	}

	rows, err = tx.QueryContext(ctx, `SELECT id, tenant, addr, healthy FROM instances ORDER BY tenant, id`)
	if err != nil {
		return s, fmt.Errorf("read instances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var in registry.Instance
		if err := rows.Scan(&in.ID, &in.Tenant, &in.Addr, &in.Healthy); err != nil {
			return s, fmt.Errorf("read instances: %w", err)
		}
		s.Instances = append(s.Instances, in)
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read instances: %w", err)
	}
	return s, nil
}
