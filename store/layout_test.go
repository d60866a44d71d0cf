package store

import (
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/internal/mongotest"
)

// processStore is a Store over db as a new process has it: its own client
// (nothing cached), recording the commands it sends.
func processStore(t *testing.T, db *mongo.Database) (*Store, *mongotest.Commands) {
	t.Helper()
	client, cmds := mongotest.RecordingClient(t)
	return New(client.Database(db.Name()), Options{}), cmds
}

func hasIndex(t *testing.T, db *mongo.Database, col, name string) bool {
	t.Helper()
	specs, err := db.Collection(col).Indexes().ListSpecifications(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == name })
}

// TestStartTenant: a start of a database this binary migrated reads the
// stamp and the schema version and writes nothing; a database whose stamp
// records no layout or another one (restored, or migrated by another
// binary) is checked in full, its missing index made again; a newer
// schema is refused; and a database stamped for another tenant is refused
// to a start, untouched, before and after its own starts.
func TestStartTenant(t *testing.T) {
	const ix = "username_lower_unique"
	cases := []struct {
		name string
		// before changes the migrated database of idA; the start is then
		// of tenant, and wants err (nil: started, and the index is there).
		before func(t *testing.T, db *mongo.Database)
		tenant string
		err    error
		writes bool // whether the start may write
	}{
		{name: "current", tenant: idA},
		{name: "restored: no layout", tenant: idA, writes: true, before: func(t *testing.T, db *mongo.Database) {
			setStamp(t, db, d("$unset", d("layout", "")))
			dropIndex(t, db, ix)
		}},
		{name: "another binary's layout", tenant: idA, writes: true, before: func(t *testing.T, db *mongo.Database) {
			setStamp(t, db, d("$set", d("layout", "4-0000000000000000")))
			dropIndex(t, db, ix)
		}},
		{name: "newer schema", tenant: idA, err: ErrSchemaTooNew, before: func(t *testing.T, db *mongo.Database) {
			if _, err := db.Collection(colMeta).UpdateOne(t.Context(), d("_id", schemaDocID), d("$set", d("version", SchemaVersion+1))); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another tenant's database", tenant: idB, err: ErrWrongTenant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			db := mongotest.Database(t)
			first, _ := processStore(t, db)
			if _, _, err := first.StartTenant(ctx, idA, nil); err != nil {
				t.Fatalf("first start: %v", err)
			}
			stamp, err := first.readStamp(ctx)
			if err != nil || stamp.TenantID != idA || stamp.Layout != first.migrationLayout(ctx) {
				t.Fatalf("stamp after the first start: %+v, %v; want %s with the layout %s", stamp, err, idA, first.migrationLayout(ctx))
			}
			if c.before != nil {
				c.before(t, db)
			}
			before, _ := first.readStamp(ctx)

			s, log := processStore(t, db)
			from, to, err := s.StartTenant(ctx, c.tenant, nil)
			cmds := log.Take()
			if !c.writes && mongotest.Writes(cmds) {
				t.Errorf("the start wrote: %v", cmds)
			}
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("start of %s: %v, want %v", c.tenant, err, c.err)
				}
				if after, _ := first.readStamp(ctx); after != before {
					t.Errorf("a refused start changed the stamp: %+v, was %+v", after, before)
				}
				return
			}
			if err != nil || from != SchemaVersion || to != SchemaVersion {
				t.Fatalf("start: %d → %d, %v", from, to, err)
			}
			if !c.writes && len(cmds) > 3 { // the stamp, the version, and buildInfo (asked once per process)
				t.Errorf("the start of a current database sent %d commands: %v", len(cmds), cmds)
			}
			if !hasIndex(t, db, colUsers, ix) {
				t.Errorf("index %s missing after the start", ix)
			}
			if after, _ := s.readStamp(ctx); after.TenantID != idA || after.Layout != s.migrationLayout(ctx) {
				t.Errorf("stamp after the start: %+v", after)
			}
			// The next start is a current one again.
			s2, log2 := processStore(t, db)
			if _, _, err := s2.StartTenant(ctx, idA, nil); err != nil {
				t.Fatal(err)
			}
			if cmds := log2.Take(); len(cmds) > 3 {
				t.Errorf("the start after sent %d commands: %v", len(cmds), cmds)
			}
		})
	}
}

// TestMigrateTenantOfStampedWritesNothing: migrating a current database
// stamped for the tenant checks everything but writes nothing (no stamp
// insert attempt); its stamp is never rewritten for another tenant.
func TestMigrateTenantOfStampedWritesNothing(t *testing.T) {
	ctx := t.Context()
	db := mongotest.Database(t)
	first, _ := processStore(t, db)
	if _, _, err := first.MigrateTenant(ctx, idA); err != nil {
		t.Fatal(err)
	}
	s, log := processStore(t, db)
	if _, _, err := s.MigrateTenant(ctx, idA); err != nil {
		t.Fatal(err)
	}
	if cmds := log.Take(); mongotest.Writes(cmds) {
		t.Errorf("migrating a current database wrote: %v", cmds)
	}
	if _, _, err := s.MigrateTenant(ctx, idB); !errors.Is(err, ErrWrongTenant) {
		t.Errorf("MigrateTenant of another tenant: %v", err)
	}
	if cmds := log.Take(); mongotest.Writes(cmds) {
		t.Errorf("a refused migration wrote: %v", cmds)
	}
}

func setStamp(t *testing.T, db *mongo.Database, update bson.D) {
	t.Helper()
	if _, err := db.Collection(colMeta).UpdateOne(t.Context(), d("_id", tenantDocID), update); err != nil {
		t.Fatal(err)
	}
}

func dropIndex(t *testing.T, db *mongo.Database, name string) {
	t.Helper()
	if err := db.Collection(colUsers).Indexes().DropOne(t.Context(), name); err != nil {
		t.Fatal(err)
	}
}
