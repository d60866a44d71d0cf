package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// schema1Store returns a Store over a database as schema version 1 left
// it: students without keys, the $inc counter, version 1 recorded.
func schema1Store(t *testing.T, regNos ...string) *Store {
	t.Helper()
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{})
	docs := make([]any, len(regNos))
	for i, r := range regNos {
		docs[i] = Student{ID: int64(i + 1), RegistrationNo: r, FirstName: "Zoë", SecondName: fmt.Sprintf("Ñúñez%d", i)}
	}
	if _, err := s.col(colStudents).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colCounters).InsertOne(ctx, bson.D{{Key: "_id", Value: legacySeqDoc}, {Key: "seq", Value: int64(len(regNos))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colMeta).InsertOne(ctx, bson.D{{Key: "_id", Value: schemaDocID}, {Key: "version", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func regNosN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("M-%03d", i)
	}
	return out
}

func checkMigrated(t *testing.T, s *Store, want int) {
	t.Helper()
	ctx := t.Context()
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema: %v", err)
	}
	pg, err := s.ListStudents(ctx, ListOptions{Query: "zoe nunez", PerPage: MaxPerPage})
	if err != nil {
		t.Fatal(err)
	}
	if pg.Total != int64(want) {
		t.Fatalf("accent-insensitive search after migration finds %d, want %d", pg.Total, want)
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == colStudentsV1 || n == colStudentsV2 {
			t.Errorf("collection %s left behind", n)
		}
	}
	if st := mustCreate(t, s, "NEW-1", "After", "Migration"); st.ID != int64(want)+1 {
		t.Errorf("first id after migration = %d, want %d", st.ID, want+1)
	}
}

func TestMigrateV2Idempotent(t *testing.T) {
	t.Parallel()
	s := schema1Store(t, regNosN(7)...)
	for run := range 2 {
		from, to, err := s.Migrate(t.Context())
		if err != nil || to != SchemaVersion || (run == 0 && from != 1) {
			t.Fatalf("run %d: Migrate = %d, %d, %v", run, from, to, err)
		}
	}
	checkMigrated(t, s, 7)
}

func TestMigrateV2Resumable(t *testing.T) {
	t.Parallel()
	crash := errors.New("crash")
	tests := []struct {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := schema1Store(t, regNosN(10)...)
			s.copyBatch = 3
			tt.crash(s)
			if _, _, err := s.Migrate(t.Context()); !errors.Is(err, crash) {
				t.Fatalf("crashing Migrate = %v, want the crash", err)
			}
			if err := s.CheckSchema(t.Context()); !errors.Is(err, ErrNotMigrated) {
				t.Fatalf("CheckSchema after a crash = %v, want ErrNotMigrated", err)
			}
			s.beforeCopyBatch, s.beforeSwap = nil, nil
			if from, to, err := s.Migrate(t.Context()); err != nil || from != 1 || to != SchemaVersion {
				t.Fatalf("rerun = %d, %d, %v", from, to, err)
			}
			checkMigrated(t, s, 10)
		})
	}
}

func TestMigrateV2CaseDuplicates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := schema1Store(t, "S001", "s001", "OK-1", "ab-2", "AB-2")
	from, to, err := s.Migrate(ctx)
	var ce *RegNoConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrRegNoConflicts) || from != 1 || to != SchemaVersion {
		t.Fatalf("Migrate = %d, %d, %v; want 1, %d, a RegNoConflictError", from, to, err, SchemaVersion)
	}
	if len(ce.Conflicts) != 2 || ce.Conflicts[0].Key != "ab-2" || ce.Conflicts[1].Key != "s001" ||
		len(ce.Conflicts[1].Students) != 2 || ce.Conflicts[1].Students[0].ID != 1 || ce.Conflicts[1].Students[1].ID != 2 {
		t.Fatalf("report = %+v", ce.Conflicts)
	}
	for _, want := range []string{`"S001" (id 1`, `"s001" (id 2`, `"AB-2" (id 5`, "campus manage TENANT migrate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report does not mention %s:\n%v", want, err)
		}
	}
	// Everything else is migrated: the app serves.
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema with conflicts: %v", err)
	}
	if pg, err := s.ListStudents(ctx, ListOptions{Query: "zoe"}); err != nil || pg.Total != 5 {
		t.Fatalf("search with conflicts = %d, %v", pg.Total, err)
	}
	// New students are still checked regardless of case.
	if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: "ok-1", FirstName: "A", SecondName: "B"}); !errors.Is(err, ErrDuplicateRegNo) {
		t.Fatalf("create ok-1 beside OK-1 = %v", err)
	}
	// Resolve, migrate again: the unique index appears.
	if err := s.DeleteStudent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStudent(ctx, 5, StudentInput{RegistrationNo: "AB-3", FirstName: "Zoë", SecondName: "Ñúñez4"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after resolving = %v", err)
	}
	raw := newStudentDoc(Student{ID: 99, RegistrationNo: "s001", FirstName: "Raw", SecondName: "Insert"})
	if _, err := s.col(colStudents).InsertOne(ctx, raw); !errors.Is(errorsOrDup(err), ErrDuplicateRegNo) {
		t.Fatalf("raw insert of s001 beside S001 after resolving = %v, want a duplicate key error", err)
	}
}
