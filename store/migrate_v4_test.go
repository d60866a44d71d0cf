package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// schema3Store returns a Store over a database as schema 3 left it: the
// students of an import, a hand-made one, a committed bulk change (rows
// marked, with their previous values) and an update import cut before its
// commit (pending), all with int64 _ids; version 3. It returns what
// readers saw before the conversion.
func schema3Store(t *testing.T, model ReadModelMode) (*Store, []string) {
	t.Helper()
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{ReadModel: model})
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := s.ImportStudents(ctx, rowsOf("M", 10, "Amina"), nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	mustCreate(t, s, "M-HAND", "Baraka", "Mwangi")
	ids, _, err := s.MatchingIDs(ctx, ListOptions{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeStudents(ctx, ids[:3], StudentsChange{SetClass: true, Class: "Form 2B"}, Actor{Username: "boss"}); err != nil {
		t.Fatal(err)
	}
	crashAt(t, s.db, "commit", func(w *Store) {
		plan, err := w.PlanImport(ctx, rowsOf("M", 10, "Zawadi"), nil, nil, ImportUpdate)
		if err != nil || len(plan.Changed) != 10 {
			t.Errorf("plan: %d changed, %v", len(plan.Changed), err)
			return
		}
		_, _ = w.ApplyImport(ctx, plan, CommandLine)
	})
	want := register(t, New(s.db, Options{ReadModel: model}))
	// Every _id back to the number of schema 3.
	cur, err := s.col(colStudents).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		t.Fatal(err)
	}
	var old []any
	for _, r := range raws {
		var doc bson.D
		if err := bson.Unmarshal(r, &doc); err != nil {
			t.Fatal(err)
		}
		id, _ := studentIDOf(r.Lookup("_id"))
		doc[slices.IndexFunc(doc, func(e bson.E) bool { return e.Key == "_id" })].Value = id
		old = append(old, doc)
	}
	if _, err := s.col(colStudents).DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colStudents).InsertMany(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$set", d("version", 3))); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSchema(ctx); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("a schema 3 database: CheckSchema = %v", err)
	}
	return s, want
}

// TestMigrateStudentIDs: a schema 3 database's students get string _ids
// from the next Migrate, every other field as it was (a pending
// operation's marks too, so that it is still rolled back), whether it runs
// at once or is cut at any step and run again; a second run does nothing.
func TestMigrateStudentIDs(t *testing.T) {
	t.Parallel()
	crash := errors.New("crash")
	cutAt := func(point string) func(s *Store) {
		return func(s *Store) {
			s.cutMigration = func(at string) error {
				if at == point {
					return crash
				}
				return nil
			}
		}
	}
	for _, tt := range []struct {
		name  string
		model ReadModelMode
		crash func(s *Store)
	}{
		{"at once", ReadModelOff, nil},
		{"at once, read model", ReadModelOn, nil},
		{"during the copy", ReadModelOn, func(s *Store) {
			s.beforeCopyBatch = func(b int) error {
				if b == 2 {
					return crash
				}
				return nil
			}
		}},
		{"copied, not recorded", ReadModelOff, cutAt("copied")},
		{"before the swap", ReadModelOn, func(s *Store) { s.beforeSwap = func() error { return crash } }},
		{"between the renames", ReadModelOff, cutAt("renamed")},
		{"swapped, old not dropped", ReadModelOn, cutAt("swapped")},
		{"dropped, record kept", ReadModelOff, cutAt("dropped")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s, want := schema3Store(t, tt.model)
			s.copyBatch = 4
			if tt.crash != nil {
				tt.crash(s)
				if _, _, err := s.Migrate(ctx); !errors.Is(err, crash) {
					t.Fatalf("crashing Migrate = %v, want the crash", err)
				}
				if err := s.CheckSchema(ctx); !errors.Is(err, ErrNotMigrated) {
					t.Fatalf("CheckSchema after a crash = %v, want ErrNotMigrated", err)
				}
				s.beforeCopyBatch, s.beforeSwap, s.cutMigration = nil, nil, nil
			}
			if from, to, err := s.Migrate(ctx); err != nil || from != 3 || to != SchemaVersion {
				t.Fatalf("Migrate = %d, %d, %v", from, to, err)
			}
			for run := range 2 { // and again: nothing to do
				names, err := s.db.ListCollectionNames(ctx, bson.D{})
				if err != nil {
					t.Fatal(err)
				}
				for _, left := range []string{colStudentsV3, colStudentsV4} {
					if slices.Contains(names, left) {
						t.Errorf("run %d: %s left behind", run, left)
					}
				}
				if copied, err := s.metaFlag(ctx, migrationV4Doc); err != nil || copied {
					t.Errorf("run %d: the copy record left behind (%v)", run, err)
				}
				assertStringIDsOnly(t, s, fmt.Sprintf("run %d", run))
				fresh := New(s.db, Options{ReadModel: tt.model})
				if got := register(t, fresh); !slices.Equal(got, want) {
					t.Fatalf("run %d: readers see\n%v\nwant\n%v", run, got, want)
				}
				if complete, err := s.indexesComplete(ctx); err != nil || !complete {
					t.Errorf("run %d: indexes complete = %v, %v", run, complete, err)
				}
				if from, to, err := s.Migrate(ctx); err != nil || from != SchemaVersion || to != SchemaVersion {
					t.Fatalf("Migrate again = %d, %d, %v", from, to, err)
				}
			}
			// The pending update import is still rolled back: its rows
			// are found by their new _ids and lose its marks.
			if n, err := s.RecoverOperations(ctx); err != nil || n != 1 {
				t.Fatalf("roll back the pending import: %d, %v", n, err)
			}
			if n, err := s.col(colStudents).CountDocuments(ctx, d("prev.first_name", "Amina")); err != nil || n != 0 {
				t.Fatalf("%d rows still carry the rolled-back import's marks (%v)", n, err)
			}
			if got := register(t, New(s.db, Options{ReadModel: tt.model})); !slices.Equal(got, want) {
				t.Fatalf("after the roll-back readers see\n%v\nwant\n%v", got, want)
			}
			// Hand edit and new students after the conversion.
			ids, _, err := s.MatchingIDs(ctx, ListOptions{}, 100)
			if err != nil || len(ids) != 11 {
				t.Fatalf("ids: %v %v", ids, err)
			}
			if _, err := s.UpdateStudent(ctx, slices.Max(ids), StudentInput{RegistrationNo: "M-HAND", FirstName: "Baraka", SecondName: "Otieno"}); err != nil {
				t.Fatalf("edit after the conversion: %v", err)
			}
			if next := mustCreate(t, s, "M-NEXT", "Neema", "W"); next.ID <= slices.Max(ids) {
				t.Errorf("new student %d, not above %d", next.ID, slices.Max(ids))
			}
			assertStringIDsOnly(t, s, "after new writes")
		})
	}
}

// assertStringIDsOnly is assertStringIDs with the server's own check of
// the type.
func assertStringIDsOnly(t *testing.T, s *Store, step string) {
	t.Helper()
	n, err := s.col(colStudents).CountDocuments(t.Context(), d("_id", d("$not", d("$type", "string"))))
	if err != nil || n != 0 {
		t.Errorf("%s: %d students without a string _id (%v)", step, n, err)
	}
	total, err := s.col(colStudents).CountDocuments(t.Context(), bson.D{})
	if err != nil || total == 0 {
		t.Errorf("%s: %d students (%v)", step, total, err)
	}
	assertStringIDs(t, s, step)
}
