package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry"
)

// write runs fn in a BEGIN IMMEDIATE transaction. When fn reports a
// change, the version is bumped in the same transaction and, after the
// commit, this handle's watchers are woken.
//
// The bump must stay the last change and happen exactly once: changed
// rows are stamped with version + 1 (see stamp), and Snapshot relies on
// those stamps to read only what changed. A transaction that changes
// nothing is rolled back, stamps included.
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
	if r.keep > 0 && v%r.keep == 0 && v > r.keep {
		// Forget old deletions. A handle whose cached snapshot is older
		// than the horizon reads everything again.
		horizon := v - r.keep
		if _, err := tx.ExecContext(ctx, `DELETE FROM tombstones WHERE ver <= ?`, horizon); err != nil {
			return r.dbErr(ctx, "prune tombstones", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET pruned = max(pruned, ?) WHERE id = 1`, horizon); err != nil {
			return r.dbErr(ctx, "prune tombstones", err)
		}
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
	if t.ID == "" {
		t.ID = registry.NewID()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	t.CreatedAt = fromNanos(toNanos(t.CreatedAt)) // as it reads back
	t.DeletedAt, t.PurgeAfter = fromNanos(toNanos(t.DeletedAt)), fromNanos(toNanos(t.PurgeAfter))
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %q: %w", t.Name, err)
	}
	t.Hosts = append([]string(nil), t.Hosts...)
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO tenants (name, display_name, primary_host, db_name, state, created_at, id, deleted_at, purge_after, idle_timeout, memory, ver) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, `+stamp+`)`,
			t.Name, t.DisplayName, t.PrimaryHost, t.Database, string(t.State), toNanos(t.CreatedAt), t.ID, toNanos(t.DeletedAt), toNanos(t.PurgeAfter), t.IdleTimeout, t.Memory)
		if isUniqueViolation(err) {
			return false, fmt.Errorf("tenant %q: %w", t.Name, registry.ErrExists)
		}
		if err != nil {
			return false, r.dbErr(ctx, "insert tenant", err)
		}
		// The PRIMARY KEY on host decides who owns it, across processes.
		for i, h := range t.Hosts {
			if err := r.claimHost(ctx, tx, h, t.Name, i); err != nil {
				return false, err
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
	t, err := r.update(ctx, name, func(t registry.Tenant) (registry.Tenant, error) { return registry.CheckSetState(t, state) })
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("set state of tenant %q: %w", name, err)
	}
	return t, nil
}

// MarkDeleted implements registry.Registry.
func (r *Registry) MarkDeleted(ctx context.Context, name string, purgeAfter time.Time) (registry.Tenant, error) {
	now := fromNanos(toNanos(time.Now()))
	purgeAfter = fromNanos(toNanos(purgeAfter))
	t, err := r.update(ctx, name, func(t registry.Tenant) (registry.Tenant, error) {
		return registry.CheckMarkDeleted(t, now, purgeAfter)
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("delete tenant %q (data kept): %w", name, err)
	}
	return t, nil
}

// RestoreTenant implements registry.Registry.
func (r *Registry) RestoreTenant(ctx context.Context, name string) (registry.Tenant, error) {
	t, err := r.update(ctx, name, registry.CheckRestore)
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("restore tenant %q: %w", name, err)
	}
	return t, nil
}

// update reads a tenant, applies change and writes the result, if it
// differs, in one write transaction.
func (r *Registry) update(ctx context.Context, name string, change func(registry.Tenant) (registry.Tenant, error)) (registry.Tenant, error) {
	var t registry.Tenant
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		before, err := loadTenant(ctx, tx, name) // ErrNotFound when there is none
		if err != nil {
			return false, err
		}
		after, err := change(before)
		if err != nil {
			return false, err
		}
		if after.Equal(before) {
			t = before
			return false, nil
		}
		if err := registry.CheckUpdate(before, after); err != nil {
			return false, err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE tenants SET display_name = ?, state = ?, deleted_at = ?, purge_after = ?, idle_timeout = ?, memory = ?, ver = `+stamp+` WHERE name = ?`,
			after.DisplayName, string(after.State), toNanos(after.DeletedAt), toNanos(after.PurgeAfter), after.IdleTimeout, after.Memory, name)
		if err != nil {
			return false, r.dbErr(ctx, "update tenant", err)
		}
		t = after
		return true, nil
	})
	return t, err
}

// toNanos stores a time as Unix nanoseconds; the zero time as 0.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos reads what toNanos stored.
func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// DeleteTenant implements registry.Registry. Deleting an unknown tenant is
// an error wrapping registry.ErrNotFound.
func (r *Registry) DeleteTenant(ctx context.Context, name string) error {
	if err := r.deleteTenant(ctx, name, ""); err != nil {
		return fmt.Errorf("delete tenant %q: %w", name, err)
	}
	return nil
}

// PurgeTenant implements registry.Registry.
func (r *Registry) PurgeTenant(ctx context.Context, name, id string) error {
	if id == "" {
		return fmt.Errorf("purge tenant %q: %w", name, &registry.InvalidError{Field: "id", Msg: "empty"})
	}
	if err := r.deleteTenant(ctx, name, id); err != nil {
		return fmt.Errorf("purge tenant %q (ID %s): %w", name, id, err)
	}
	return nil
}

// deleteTenant removes name and its hosts; only if its ID is id, unless
// id is "".
func (r *Registry) deleteTenant(ctx context.Context, name, id string) error {
	return r.write(ctx, func(tx *sql.Tx) (bool, error) {
		if id != "" {
			var got string
			err := tx.QueryRowContext(ctx, `SELECT id FROM tenants WHERE name = ?`, name).Scan(&got)
			if errors.Is(err, sql.ErrNoRows) {
				return false, registry.ErrNotFound
			}
			if err != nil {
				return false, r.dbErr(ctx, "read tenant", err)
			}
			if got != id {
				return false, fmt.Errorf("the tenant of that name now has ID %s: %w", got, registry.ErrNotFound)
			}
		}
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
}

// RegisterInstance implements registry.Registry. Registering an instance
// exactly as stored changes nothing and wakes no watcher.
func (r *Registry) RegisterInstance(ctx context.Context, in registry.Instance) error {
	if err := validateInstance(in); err != nil {
		return fmt.Errorf("register instance %q: %w", in.ID, err)
	}
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO instances (id, tenant, addr, healthy, memory_kills, ver) VALUES (?, ?, ?, ?, ?, `+stamp+`)
			ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, addr = excluded.addr, healthy = excluded.healthy, memory_kills = excluded.memory_kills, ver = excluded.ver
			WHERE tenant != excluded.tenant OR addr != excluded.addr OR healthy != excluded.healthy OR memory_kills != excluded.memory_kills`,
			in.ID, in.Tenant, in.Addr, in.Healthy, in.MemoryKills)
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

// tenantColumns are what scanTenant reads.
const tenantColumns = `name, display_name, primary_host, db_name, state, created_at, id, deleted_at, purge_after, idle_timeout, memory`

// scanTenant reads one row of tenantColumns (without hosts).
func scanTenant(row interface{ Scan(...any) error }) (registry.Tenant, error) {
	var (
		t                  registry.Tenant
		state              string
		created, del, purg int64
	)
	if err := row.Scan(&t.Name, &t.DisplayName, &t.PrimaryHost, &t.Database, &state, &created, &t.ID, &del, &purg, &t.IdleTimeout, &t.Memory); err != nil {
		return registry.Tenant{}, err
	}
	t.State = registry.State(state)
	t.CreatedAt = time.Unix(0, created).UTC()
	t.DeletedAt, t.PurgeAfter = fromNanos(del), fromNanos(purg)
	return t, nil
}

func loadTenant(ctx context.Context, tx *sql.Tx, name string) (registry.Tenant, error) {
	t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Tenant{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("read tenant: %w", err)
	}
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
// while nothing changes, callers share one (they must not modify it). When
// the version moved, the new snapshot is the cached one plus the rows
// stamped with a newer version, minus the tombstones newer than it; a
// change among 10,000 tenants reads a few rows instead of all of them
// (BenchmarkSnapshotAfterChange). Without a usable cache (the first read,
// or one older than the tombstone horizon) everything is read.
func (r *Registry) Snapshot(ctx context.Context) (registry.Snapshot, error) {
	var s registry.Snapshot
	err := r.read(ctx, func(tx *sql.Tx) error {
		var v, pruned uint64
		if err := tx.QueryRowContext(ctx, `SELECT version, pruned FROM meta WHERE id = 1`).Scan(&v, &pruned); err != nil {
			return r.dbErr(ctx, "read version", err)
		}
		r.mu.Lock()
		cached := r.cache
		r.mu.Unlock()
		var err error
		switch {
		case cached != nil && cached.Version == v:
			s = *cached
		case cached != nil && cached.Version < v && cached.Version >= pruned:
			s, err = loadChanges(ctx, tx, *cached, v)
		default:
			s, err = loadSnapshot(ctx, tx, v)
		}
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

// loadChanges reads what changed since base (rows stamped after
// base.Version, and tombstones) and returns base with the changes applied,
// as version. Unchanged tenants and instances are shared with base, and a
// slice with no change is base's own.
func loadChanges(ctx context.Context, tx *sql.Tx, base registry.Snapshot, version uint64) (registry.Snapshot, error) {
	s := registry.Snapshot{Version: version, Tenants: base.Tenants, Instances: base.Instances}
	after := base.Version

	goneTenants, goneInstances := map[string]bool{}, map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT kind, key FROM tombstones WHERE ver > ?`, after)
	if err != nil {
		return s, fmt.Errorf("read tombstones: %w", err)
	}
	for rows.Next() {
		var kind, key string
		if err := rows.Scan(&kind, &key); err != nil {
			rows.Close()
			return s, fmt.Errorf("read tombstones: %w", err)
		}
		switch kind {
		case "tenant":
			goneTenants[key] = true
		case "instance":
			goneInstances[key] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read tombstones: %w", err)
	}

	tenants, err := readTenants(ctx, tx, `WHERE ver > ?`, after)
	if err != nil {
		return s, err
	}
	if len(tenants) > 0 || len(goneTenants) > 0 {
		for _, t := range tenants {
			goneTenants[t.Name] = true // the old version goes; a re-created tenant comes back
		}
		s.Tenants = merge(base.Tenants, tenants, goneTenants,
			func(t *registry.Tenant) string { return t.Name }, compareTenants)
	}

	instances, err := readInstances(ctx, tx, `WHERE ver > ?`, after)
	if err != nil {
		return s, err
	}
	if len(instances) > 0 || len(goneInstances) > 0 {
		for _, in := range instances {
			goneInstances[in.ID] = true // it may have moved to another tenant: drop it wherever it was
		}
		s.Instances = merge(base.Instances, instances, goneInstances,
			func(in *registry.Instance) string { return in.ID }, compareInstances)
	}
	return s, nil
}

// merge returns a new slice: base without the elements whose key is in
// drop, and add merged in. base and add are sorted by cmp; so is the
// result.
func merge[T any](base, add []T, drop map[string]bool, key func(*T) string, cmp func(a, b *T) int) []T {
	out := make([]T, 0, len(base)+len(add))
	j := 0
	for i := range base {
		if drop[key(&base[i])] {
			continue
		}
		for j < len(add) && cmp(&add[j], &base[i]) < 0 {
			out = append(out, add[j])
			j++
		}
		out = append(out, base[i])
	}
	return append(out, add[j:]...)
}

// The orders of a Snapshot; SQLite's BINARY collation compares like Go.
func compareTenants(a, b *registry.Tenant) int { return strings.Compare(a.Name, b.Name) }

func compareInstances(a, b *registry.Instance) int {
	if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func loadSnapshot(ctx context.Context, tx *sql.Tx, version uint64) (registry.Snapshot, error) {
	s := registry.Snapshot{Version: version, Tenants: []registry.Tenant{}, Instances: []registry.Instance{}}
	tenants, err := readTenants(ctx, tx, "")
	if err != nil {
		return s, err
	}
	instances, err := readInstances(ctx, tx, "")
	if err != nil {
		return s, err
	}
	if tenants != nil {
		s.Tenants = tenants
	}
	if instances != nil {
		s.Instances = instances
	}
	return s, nil
}

// readTenants reads the tenants selected by where (with args; "" for all),
// with their hosts, sorted by name.
func readTenants(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]registry.Tenant, error) {
	rows, err := tx.QueryContext(ctx,
		`SELECT `+tenantColumns+` FROM tenants `+orderedBy(where, "name"), args...)
	if err != nil {
		return nil, fmt.Errorf("read tenants: %w", err)
	}
	var out []registry.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read tenants: %w", err)
		}
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tenants: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	if where != "" {
		slices.SortFunc(out, func(a, b registry.Tenant) int { return compareTenants(&a, &b) })
	}
	index := make(map[string]int, len(out))
	for i := range out {
		index[out[i].Name] = i
	}

	q := `SELECT host, tenant FROM hosts ORDER BY tenant, pos`
	if where != "" {
		q = `SELECT host, tenant FROM hosts WHERE tenant IN (SELECT name FROM tenants ` + where + `) ORDER BY tenant, pos`
	}
	rows, err = tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, tenant string
		if err := rows.Scan(&h, &tenant); err != nil {
			return nil, fmt.Errorf("read hosts: %w", err)
		}
		if i, ok := index[tenant]; ok {
			out[i].Hosts = append(out[i].Hosts, h)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	return out, nil
}

// readInstances reads the instances selected by where (with args; "" for
// all), sorted by tenant and ID.
func readInstances(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]registry.Instance, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, tenant, addr, healthy, memory_kills FROM instances `+orderedBy(where, "tenant, id"), args...)
	if err != nil {
		return nil, fmt.Errorf("read instances: %w", err)
	}
	defer rows.Close()
	var out []registry.Instance
	for rows.Next() {
		var in registry.Instance
		if err := rows.Scan(&in.ID, &in.Tenant, &in.Addr, &in.Healthy, &in.MemoryKills); err != nil {
			return nil, fmt.Errorf("read instances: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read instances: %w", err)
	}
	if where != "" {
		slices.SortFunc(out, func(a, b registry.Instance) int { return compareInstances(&a, &b) })
	}
	return out, nil
}

// orderedBy completes a query: a full read is ordered by SQLite, walking
// the index of order; a filtered one is sorted by the caller, or SQLite
// would walk that same index through every row instead of the few the
// filter's index finds.
func orderedBy(where, order string) string {
	if where == "" {
		return "ORDER BY " + order
	}
	return where
}

// claimHost inserts host for tenant at position pos. The hosts table's
// PRIMARY KEY decides who owns a host, across processes: a host already
// taken is a *registry.HostTakenError naming its owner.
func (r *Registry) claimHost(ctx context.Context, tx *sql.Tx, host, tenant string, pos int) error {
	if err := r.checkHostClaim(ctx, tx, host, tenant); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO hosts (host, tenant, pos) VALUES (?, ?, ?)`, host, tenant, pos)
	if isUniqueViolation(err) {
		var owner string
		if err := tx.QueryRowContext(ctx, `SELECT tenant FROM hosts WHERE host = ?`, host).Scan(&owner); err != nil {
			return r.dbErr(ctx, "find owner of host "+host, err)
		}
		return &registry.HostTakenError{Host: host, Owner: owner}
	}
	if err != nil {
		return r.dbErr(ctx, "insert host "+host, err)
	}
	return nil
}

// checkHostClaim applies registry.CheckHostClaim to the hosts that are
// host's ancestors or under it. It runs inside the write transaction
// (BEGIN IMMEDIATE), so no other claim can slip in between.
func (r *Registry) checkHostClaim(ctx context.Context, tx *sql.Tx, host, tenant string) error {
	args := []any{"%." + host}
	query := `SELECT host, tenant FROM hosts WHERE host LIKE ?`
	for _, a := range registry.HostAncestors(host) {
		query += ` OR host = ?`
		args = append(args, a)
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return r.dbErr(ctx, "read hosts near "+host, err)
	}
	defer rows.Close()
	var near []registry.HostOwner
	for rows.Next() {
		var o registry.HostOwner
		if err := rows.Scan(&o.Host, &o.Tenant); err != nil {
			return r.dbErr(ctx, "read hosts near "+host, err)
		}
		near = append(near, o)
	}
	if err := rows.Err(); err != nil {
		return r.dbErr(ctx, "read hosts near "+host, err)
	}
	return registry.CheckHostClaim(host, tenant, near)
}
