package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// schema2Store returns a Store over a database as schema version 2 left
// it: n students with their keys and no schema 3 field, version 2.
func schema2Store(t *testing.T, n int) *Store {
	t.Helper()
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{})
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		mustCreate(t, s, fmt.Sprintf("V2-%03d", i), "Zoë", fmt.Sprintf("Ñúñez%d", i))
	}
	if _, err := s.col(colStudents).UpdateMany(ctx, bson.D{}, d("$unset", d("status", ""))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$set", d("version", 2))); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSchema(ctx); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("a schema 2 database: CheckSchema = %v", err)
	}
	return s
}

// checkMigratedV3 checks that every student is enrolled, with nothing else
// set, found by search, in the collection and in a fresh read model.
func checkMigratedV3(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := t.Context()
	checkMigrated(t, s, n)
	missing, err := s.col(colStudents).CountDocuments(ctx, d("status", d("$ne", StatusEnrolled)))
	if err != nil || missing != 0 {
		t.Fatalf("%d students not enrolled after the migration (%v)", missing, err)
	}
	fresh := New(s.db, Options{ReadModel: ReadModelOn})
	t.Cleanup(func() { fresh.Close(t.Context()) })
	pg, err := fresh.ListStudents(ctx, ListOptions{Status: StatusEnrolled, Query: "nunez", PerPage: MaxPerPage})
	if err != nil || pg.Total != int64(n) {
		t.Fatalf("enrolled and found: %d of %d (%v)", pg.Total, n, err)
	}
	for _, st := range pg.Students {
		want := Student{ID: st.ID, RegistrationNo: st.RegistrationNo, FirstName: "Zoë", SecondName: st.SecondName, Status: StatusEnrolled,
			CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt}
		if !sameStudent(st, want) || st.CreatedAt.IsZero() {
			t.Fatalf("migrated student %+v", st)
		}
	}
}

func TestMigrateV3Idempotent(t *testing.T) {
	t.Parallel()
	s := schema2Store(t, 7)
	for run := range 2 {
		from, to, err := s.Migrate(t.Context())
		if err != nil || to != SchemaVersion || (run == 0 && from != 2) || (run == 1 && from != SchemaVersion) {
			t.Fatalf("run %d: Migrate = %d, %d, %v", run, from, to, err)
		}
	}
	checkMigratedV3(t, s, 7)
}

// TestMigrateV3Resumable interrupts the migration 2 → 3 everywhere it can
// stop; the next run finishes it, with every student once.
func TestMigrateV3Resumable(t *testing.T) {
	t.Parallel()
	crash := errors.New("crash")
	for _, tt := range []struct {
		name  string
		crash func(s *Store)
	}{
		{"during the copy", func(s *Store) {
			s.beforeCopyBatch = func(b int) error {
				if b == 2 {
					return crash
				}
				return nil
			}
		}},
		{"before the swap", func(s *Store) { s.beforeSwap = func() error { return crash } }},
		{"between the renames", func(s *Store) {
			s.beforeSwap = func() error {
				if err := s.rename(t.Context(), colStudents, colStudentsV1); err != nil {
					t.Error(err)
				}
				return crash
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := schema2Store(t, 10)
			s.copyBatch = 3
			tt.crash(s)
			if _, _, err := s.Migrate(t.Context()); !errors.Is(err, crash) {
				t.Fatalf("crashing Migrate = %v, want the crash", err)
			}
			if err := s.CheckSchema(t.Context()); !errors.Is(err, ErrNotMigrated) {
				t.Fatalf("CheckSchema after a crash = %v, want ErrNotMigrated", err)
			}
			s.beforeCopyBatch, s.beforeSwap = nil, nil
			if from, to, err := s.Migrate(t.Context()); err != nil || from != 2 || to != SchemaVersion {
				t.Fatalf("rerun = %d, %d, %v", from, to, err)
			}
			checkMigratedV3(t, s, 10)
		})
	}
}

// TestMigrateClassKeys: a schema 3 database from before class keys (on
// MongoDB: no class_key field, no class_key_id index) gets them from the
// next Migrate (resumable: a crash during the copy or before the swap is
// finished by the next run), after which the class filter ignores case
// and spacing on the database's path.
func TestMigrateClassKeys(t *testing.T) {
	t.Parallel()
	crash := errors.New("crash")
	for _, tt := range []struct {
		name  string
		model ReadModelMode
		crash func(s *Store)
	}{
		{"at once", ReadModelOff, func(*Store) {}},
		{"at once, read model", ReadModelOn, func(*Store) {}},
		{"before the swap, read model", ReadModelOn, func(s *Store) { s.beforeSwap = func() error { return crash } }},
		{"during the copy", ReadModelOff, func(s *Store) {
			s.beforeCopyBatch = func(b int) error {
				if b == 2 {
					return crash
				}
				return nil
			}
		}},
		{"before the swap", ReadModelOff, func(s *Store) { s.beforeSwap = func() error { return crash } }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := New(mongotest.Database(t), Options{ReadModel: tt.model})
			if _, _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for i, c := range []string{"Form 2B", "form 2b", "FORM  2B", "Form 1A", "", "Form 2B", "Form 1a"} {
				if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: fmt.Sprintf("K-%d", i), FirstName: "A", SecondName: "B", Class: c}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.col(colStudents).UpdateMany(ctx, bson.D{}, d("$unset", d(fieldClassKey, ""))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$unset", d(classKeysField, ""))); err != nil {
				t.Fatal(err)
			}
			if tt.model == ReadModelOff {
				if err := s.col(colStudents).Indexes().DropOne(ctx, fieldClassKey+"_id"); err != nil {
					t.Fatal(err)
				}
			}
			s.copyBatch = 3
			tt.crash(s)
			_, _, err := s.Migrate(ctx)
			if !strings.HasPrefix(tt.name, "at once") {
				if !errors.Is(err, crash) {
					t.Fatalf("crashing Migrate = %v, want the crash", err)
				}
				s.beforeCopyBatch, s.beforeSwap = nil, nil
				_, _, err = s.Migrate(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			for run := range 2 { // and again: nothing to do
				missing, err := s.col(colStudents).CountDocuments(ctx, d(fieldClassKey, d("$exists", false)))
				if err != nil || missing != 0 {
					t.Fatalf("run %d: %d students without a class key (%v)", run, missing, err)
				}
				for class, want := range map[string]int64{"form 2b": 4, "Form 1A": 2, " FÖRM 1A ": 2, "Form 3": 0} {
					pg, err := s.ListStudents(ctx, ListOptions{Class: class})
					if err != nil || pg.Total != want {
						t.Errorf("run %d: class %q: %d students (%v), want %d", run, class, pg.Total, err, want)
					}
				}
				if from, to, err := s.Migrate(ctx); err != nil || from != SchemaVersion || to != SchemaVersion {
					t.Fatalf("Migrate again = %d, %d, %v", from, to, err)
				}
			}
		})
	}
}
