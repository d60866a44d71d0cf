package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// fullRead reads the whole registry the way a handle without a cache does.
func fullRead(t *testing.T, r *Registry) registry.Snapshot {
	t.Helper()
	var s registry.Snapshot
	err := r.read(context.Background(), func(tx *sql.Tx) error {
		var v uint64
		if err := tx.QueryRow(`SELECT version FROM meta WHERE id = 1`).Scan(&v); err != nil {
			return err
		}
		var err error
		s, err = loadSnapshot(context.Background(), tx, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkSnapshot compares r's (incrementally read) snapshot with a full read.
func checkSnapshot(t *testing.T, r *Registry, step string) {
	t.Helper()
	got, err := r.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if want := fullRead(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: snapshot read from the cache plus changes differs from a full read:\n got %+v\nwant %+v", step, got, want)
	}
}

// TestSnapshotChangesMatchFullRead makes random changes through one handle
// and checks, after every change or batch of changes, that another
// handle's snapshot — its cached one plus what changed — equals a full
// read. Names are reused, so tenants and instances are deleted and come
// back, instances move between tenants, and the tombstone horizon is small
// so that lagging readers fall back to full reads.
func TestSnapshotChangesMatchFullRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, r := open(t, dir), open(t, dir)
	w.keep, r.keep = 4, 4
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"accra", "nairobi", "lagos", "kampala", "dakar", "lusaka"}
	name := func() string { return names[rng.IntN(len(names))] }

	ops := []struct {
		name string
		do   func() error
	}{
		{"create tenant", func() error {
			n := name()
			hosts := []string{n + ".school.localhost"}
			if rng.IntN(2) == 0 {
				hosts = append(hosts, fmt.Sprintf("%s-%d.example", n, rng.IntN(3)))
			}
			tn, err := registry.NewTenant(n, hosts, "")
			if err != nil {
				return err
			}
			_, err = w.CreateTenant(ctx, tn)
			return err
		}},
		{"delete tenant", func() error { return w.DeleteTenant(ctx, name()) }},
		{"suspend or resume", func() error {
			st := registry.StateActive
			if rng.IntN(2) == 0 {
				st = registry.StateSuspended
			}
			_, err := w.SetState(ctx, name(), st)
			return err
		}},
		{"register instance", func() error {
			return w.RegisterInstance(ctx, registry.Instance{ID: fmt.Sprintf("i%d", rng.IntN(10)), Tenant: name(),
				Addr: fmt.Sprintf("127.0.0.1:%d", 9000+rng.IntN(3)), Healthy: rng.IntN(3) > 0})
		}},
		{"deregister instance", func() error { return w.DeregisterInstance(ctx, fmt.Sprintf("i%d", rng.IntN(10))) }},
	}
	checkSnapshot(t, r, "start")
	for i := range 400 {
		batch := 1
		if rng.IntN(4) == 0 {
			batch = 1 + rng.IntN(20) // sometimes lag behind, past the tombstone horizon
		}
		var did []string
		for range batch {
			op := ops[rng.IntN(len(ops))]
			_ = op.do() // not found, exists, host taken: all fine here
			did = append(did, op.name)
		}
		checkSnapshot(t, r, fmt.Sprintf("step %d (%v)", i, did))
	}
	var tombstones int
	if err := w.rdb.QueryRow(`SELECT count(*) FROM tombstones`).Scan(&tombstones); err != nil {
		t.Fatal(err)
	}
	if tombstones > len(names)+10 {
		t.Errorf("%d tombstones left for %d names and 10 instance IDs", tombstones, len(names))
	}
	var pruned uint64
	if err := w.rdb.QueryRow(`SELECT pruned FROM meta`).Scan(&pruned); err != nil || pruned == 0 {
		t.Errorf("tombstones were never pruned (pruned = %d, %v)", pruned, err)
	}
}

// TestMigrateFromSchema1 opens a registry written by the first schema: the
// data survives, and changes after the upgrade are read incrementally.
func TestMigrateFromSchema1(t *testing.T) {
	if len(migrations) != schemaVersion {
		t.Fatalf("schemaVersion %d, but %d migrations", schemaVersion, len(migrations))
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), DefaultBusyTimeout, ""))
	if err != nil {
		t.Fatal(err)
	}
	stmts := append(append([]string{}, migrations[0]...),
		`PRAGMA user_version = 1`,
		`UPDATE meta SET version = 7`,
		`INSERT INTO tenants VALUES ('accra', 'Accra', 'accra.school.localhost', 'accra', 'active', 1)`,
		`INSERT INTO hosts VALUES ('accra.school.localhost', 'accra', 0), ('accra.example', 'accra', 1)`,
		`INSERT INTO tenants VALUES ('nairobi', 'Nairobi', 'nairobi.school.localhost', 'nairobi', 'suspended', 2)`,
		`INSERT INTO hosts VALUES ('nairobi.school.localhost', 'nairobi', 0)`,
		`INSERT INTO instances VALUES ('a1', 'accra', '127.0.0.1:9001', 1)`,
	)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			db.Close()
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()

	w, r := open(t, dir), open(t, dir)
	s, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Version 8: schema 3 gave the tenants their IDs, a change.
	if s.Version != 8 || len(s.Tenants) != 2 || len(s.Instances) != 1 ||
		!reflect.DeepEqual(s.Tenants[0].Hosts, []string{"accra.school.localhost", "accra.example"}) ||
		s.Tenants[1].State != registry.StateSuspended {
		t.Fatalf("snapshot after the upgrade = %+v", s)
	}
	for _, tn := range s.Tenants {
		if err := tn.Validate(); err != nil {
			t.Errorf("tenant %s after the upgrade: %v", tn.Name, err)
		}
	}
	if s.Tenants[0].ID == s.Tenants[1].ID {
		t.Errorf("the upgrade gave both tenants ID %s", s.Tenants[0].ID)
	}
	recreate, _ := registry.NewTenant("accra", []string{"accra.example"}, "")
	steps := []struct {
		name string
		do   func() error
	}{
		{"resume nairobi", func() error { _, err := w.SetState(ctx, "nairobi", registry.StateActive); return err }},
		{"a1 unhealthy", func() error {
			return w.RegisterInstance(ctx, registry.Instance{ID: "a1", Tenant: "accra", Addr: "127.0.0.1:9001"})
		}},
		{"delete accra", func() error { return w.DeleteTenant(ctx, "accra") }},
		{"deregister a1", func() error { return w.DeregisterInstance(ctx, "a1") }},
		{"register n1", func() error {
			return w.RegisterInstance(ctx, registry.Instance{ID: "n1", Tenant: "nairobi", Addr: "127.0.0.1:9002"})
		}},
		{"create accra again", func() error { _, err := w.CreateTenant(ctx, recreate); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		checkSnapshot(t, r, st.name)
	}
}

// TestUnstampedWritesAreSeen writes the way the previous schema's code did
// (no ver column in its statements), as a process started before an
// upgrade still would: the triggers stamp its changes, so another handle's
// snapshot, read from its cache plus changes, still sees them.
func TestUnstampedWritesAreSeen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, r := open(t, dir), open(t, dir)
	oldWrite := func(stmts ...string) func() error {
		return func() error {
			return w.write(ctx, func(tx *sql.Tx) (bool, error) {
				for _, s := range stmts {
					if _, err := tx.ExecContext(ctx, s); err != nil {
						return false, fmt.Errorf("%s: %w", s, err)
					}
				}
				return true, nil
			})
		}
	}
	upsert := func(id, tenant, addr string, healthy int) string {
		return fmt.Sprintf(`INSERT INTO instances (id, tenant, addr, healthy) VALUES ('%s', '%s', '%s', %d)
			ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, addr = excluded.addr, healthy = excluded.healthy
			WHERE tenant != excluded.tenant OR addr != excluded.addr OR healthy != excluded.healthy`, id, tenant, addr, healthy)
	}
	checkSnapshot(t, r, "start")
	for _, st := range []struct {
		name string
		do   func() error
	}{
		{"create", oldWrite(
			`INSERT INTO tenants (name, display_name, primary_host, db_name, state, created_at) VALUES ('accra', 'Accra', 'accra.school.localhost', 'accra', 'active', 1)`,
			`INSERT INTO hosts (host, tenant, pos) VALUES ('accra.school.localhost', 'accra', 0)`)},
		{"register", oldWrite(upsert("a1", "accra", "127.0.0.1:9001", 1))},
		{"suspend", oldWrite(`UPDATE tenants SET state = 'suspended' WHERE name = 'accra' AND state != 'suspended'`)},
		{"unhealthy", oldWrite(upsert("a1", "accra", "127.0.0.1:9001", 0))},
		{"move", oldWrite(upsert("a1", "nairobi", "127.0.0.1:9001", 0))},
		{"add host", oldWrite(`INSERT INTO hosts (host, tenant, pos) VALUES ('accra.example', 'accra', 1)`)},
		{"deregister", oldWrite(`DELETE FROM instances WHERE id = 'a1'`)},
		{"delete", oldWrite(`DELETE FROM hosts WHERE tenant = 'accra'`, `DELETE FROM tenants WHERE name = 'accra'`)},
	} {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		checkSnapshot(t, r, st.name)
	}
}
