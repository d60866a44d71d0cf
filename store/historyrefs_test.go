package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// studentOps words StudentOperations for student id: "created import
// roster.csv add 3 by alice", in order.
func studentOps(t *testing.T, s *Store, id int64) []string {
	t.Helper()
	own, err := s.StudentHistory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := s.StudentOperations(t.Context(), id, !slices.ContainsFunc(own, func(e HistoryEntry) bool { return e.Action == ActionAdd }))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range ops {
		kind := "changed"
		if o.Created {
			kind = "created"
		}
		if o.Last {
			kind = "last-changed"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %d by %s", kind, o.Entry.Action, o.Entry.File, o.Entry.Mode, o.Entry.Count, o.Entry.Username))
	}
	return out
}

func importRows(t *testing.T, s *Store, rows []StudentInput, mode ImportMode, file string, who Actor) {
	t.Helper()
	plan, err := s.PlanImport(t.Context(), rows, nil, nil, mode)
	if err != nil || len(plan.Errors) > 0 {
		t.Fatalf("plan: %v %v", plan.Errors, err)
	}
	plan.File = file
	if _, err := s.ApplyImport(t.Context(), plan, who); err != nil {
		t.Fatal(err)
	}
}

func studentByRegNo(t *testing.T, s *Store, reg string) Student {
	t.Helper()
	pg, err := s.ListStudents(t.Context(), ListOptions{Query: reg, PerPage: 10})
	if err != nil || len(pg.Students) != 1 {
		t.Fatalf("find %s: %d students, %v", reg, len(pg.Students), err)
	}
	return pg.Students[0]
}

// TestStudentOperations: an imported student's page reaches the import
// that created it and every import that changed it, with the file, mode,
// who and row count, on both read paths; a hand edit is its own entry; a
// rolled-back import never appears; a student added by hand has none.
func TestStudentOperations(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprintf("readmodel=%d", mode), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{ReadModel: mode})
			alice := Actor{UserID: "u1", Username: "alice"}
			hand := mustCreate(t, s, "H-1", "Hand", "Made")
			// More than one reference block: the ranges cross blocks.
			importRows(t, s, rowsOf("A", refBlock+40, "Amina"), ImportAdd, "roster.csv", alice)
			first := studentByRegNo(t, s, "A-000")
			last := studentByRegNo(t, s, fmt.Sprintf("A-%03d", refBlock+39))
			if got := studentOps(t, s, first.ID); len(got) != 1 || got[0] != "created import roster.csv add 1064 by alice" {
				t.Fatalf("first imported student: %q", got)
			}
			if got := studentOps(t, s, last.ID); len(got) != 1 || !strings.HasPrefix(got[0], "created import roster.csv") {
				t.Fatalf("last imported student: %q", got)
			}
			if got := studentOps(t, s, hand.ID); len(got) != 0 {
				t.Fatalf("a student added by hand: %q", got)
			}
			// Changed by an update import (one row of two blocks), by hand,
			// and again by an import.
			rows := []StudentInput{{RegistrationNo: "A-000", FirstName: "Zawadi", SecondName: "Otieno"},
				{RegistrationNo: last.RegistrationNo, FirstName: "Zawadi", SecondName: "Otieno"}}
			importRows(t, s, rows, ImportUpdate, "fix.xlsx", CommandLine)
			in := first.Input()
			in.FirstName = "Zuri"
			if _, err := s.UpdateStudent(t.Context(), first.ID, in); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordHistory(t.Context(), StudentChanged(alice, first, first)); err != nil {
				t.Fatal(err)
			}
			rows[0].FirstName = "Imani"
			importRows(t, s, rows[:1], ImportUpdate, "again.csv", alice)
			want := []string{"created import roster.csv add 1064 by alice", "changed import fix.xlsx update 2 by (command line)", "changed import again.csv update 1 by alice"}
			if got := studentOps(t, s, first.ID); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("after two update imports:\n got %q\nwant %q", got, want)
			}
			if got := studentOps(t, s, last.ID); len(got) != 2 || !strings.HasPrefix(got[1], "changed import fix.xlsx") {
				t.Fatalf("last student after the update: %q", got)
			}
			// An import killed before its commit, then rolled back: never shown.
			crashAt(t, s.db, "commit", func(c *Store) {
				plan, err := c.PlanImport(context.Background(), []StudentInput{{RegistrationNo: "A-001", FirstName: "Ghost", SecondName: "Otieno"}}, nil, nil, ImportUpdate)
				if err != nil {
					panic(err)
				}
				plan.File = "ghost.csv"
				_, _ = c.ApplyImport(context.Background(), plan, alice)
			})
			second := studentByRegNo(t, s, "A-001")
			if got := studentOps(t, s, second.ID); len(got) != 1 {
				t.Fatalf("while the killed import is pending: %q", got)
			}
			if n, err := s.RecoverOperations(t.Context()); err != nil || n != 1 {
				t.Fatalf("rolled back %d (%v)", n, err)
			}
			if got := studentOps(t, s, second.ID); len(got) != 1 || strings.Contains(got[0], "ghost") {
				t.Fatalf("after the roll-back: %q", got)
			}
			// The history page's filter by operation: the import's entry.
			pg, err := s.FindHistory(t.Context(), HistoryFilter{Op: 1}, 1, 0)
			if err != nil || len(pg.Entries) != 1 || pg.Entries[0].File != "roster.csv" {
				t.Fatalf("history of op 1: %+v %v", pg.Entries, err)
			}
		})
	}
}

// TestStudentOperationsLegacyMarks: a row imported before the references
// (only its marks) says which import created it and which changed it
// last, never "no history": from its marks on MongoDB, from the
// references Migrate backfills on both.
func TestStudentOperationsLegacyMarks(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprintf("readmodel=%d", mode), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{ReadModel: mode})
			importRows(t, s, rowsOf("L", 3, "Amina"), ImportAdd, "", CommandLine)
			importRows(t, s, rowsOf("L", 1, "Baraka"), ImportUpdate, "", CommandLine)
			// As an older binary left them: no references, entries
			// without a mode, no backfill yet.
			if _, err := s.col(colHistorySlots).DeleteMany(t.Context(), d("_id", d("$regex", "^r:[0-9]"))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.col(colHistory).UpdateMany(t.Context(), d("action", "import"), d("$unset", d("mode", ""))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.col(colHistorySlots).DeleteOne(t.Context(), d("_id", importRefsDocID)); err != nil {
				t.Fatal(err)
			}
			st := studentByRegNo(t, s, "L-000")
			// A hand edit since: its entry is the student's own, the marks still say where it came from.
			if err := s.RecordHistory(t.Context(), StudentChanged(CommandLine, st, st)); err != nil {
				t.Fatal(err)
			}
			want := "created import   3 by (command line)|last-changed import   1 by (command line)"
			if mode == ReadModelOff { // MongoDB: the row's marks, indexed
				if got := studentOps(t, s, st.ID); strings.Join(got, "|") != want {
					t.Fatalf("legacy marks before the backfill: %q, want %q", got, want)
				}
			}
			// The backfill (Migrate), twice: as if cut short once.
			for range 2 {
				if _, err := s.col(colHistorySlots).DeleteOne(t.Context(), d("_id", importRefsDocID)); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Migrate(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if got := studentOps(t, s, st.ID); strings.Join(got, "|") != want {
				t.Fatalf("after the backfill: %q, want %q", got, want)
			}
			if got := studentOps(t, s, studentByRegNo(t, s, "L-002").ID); len(got) != 1 || !strings.HasPrefix(got[0], "created import") {
				t.Fatalf("a row the update left alone: %q", got)
			}
		})
	}
}

// TestStudentOperationsCrossTenant: schools A and B each run their import
// #1 (same operation number, same student IDs); B's student never shows
// A's import, nor A's B's.
func TestStudentOperationsCrossTenant(t *testing.T) {
	a, b := newStore(t, Options{}), newStore(t, Options{})
	importRows(t, a, rowsOf("X", 5, "Ama"), ImportAdd, "school-a.csv", Actor{Username: "alice"})
	importRows(t, b, rowsOf("Y", 5, "Bea"), ImportAdd, "school-b.csv", Actor{Username: "bob"})
	sa, sb := studentByRegNo(t, a, "X-002"), studentByRegNo(t, b, "Y-002")
	if sa.ID != sb.ID {
		t.Fatalf("the test wants the same IDs in both schools: %d, %d", sa.ID, sb.ID)
	}
	if got := studentOps(t, b, sb.ID); len(got) != 1 || !strings.Contains(got[0], "school-b.csv") || strings.Contains(got[0], "alice") {
		t.Fatalf("school B's student: %q", got)
	}
	if got := studentOps(t, a, sa.ID); len(got) != 1 || !strings.Contains(got[0], "school-a.csv") {
		t.Fatalf("school A's student: %q", got)
	}
	pg, err := b.FindHistory(t.Context(), HistoryFilter{Op: 1}, 1, 0)
	if err != nil || len(pg.Entries) != 1 || pg.Entries[0].File != "school-b.csv" {
		t.Fatalf("school B's history of its op 1: %+v %v", pg.Entries, err)
	}
	// B's export names its import's number, file and mode, nothing of A's.
	var out bytes.Buffer
	if err := b.ExportHistory(t.Context(), &out, "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[1][6:], ",") != "5,1,school-b.csv,add" || strings.Contains(out.String(), "school-a") {
		t.Fatalf("school B's history export: %q %v", rows, err)
	}
}

// TestStudentOperationsConcurrentImports: imports running at once whose
// students share reference blocks each keep their references (unique
// inserts, no read-modify-write).
func TestStudentOperationsConcurrentImports(t *testing.T) {
	s := newStore(t, Options{})
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			plan, err := s.PlanImport(t.Context(), rowsOf(fmt.Sprintf("C%d", i), 300, "Ama"), nil, nil, ImportAdd)
			if err == nil {
				plan.File = fmt.Sprintf("c%d.csv", i)
				_, err = s.ApplyImport(t.Context(), plan, CommandLine)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		for _, row := range []int{0, 299} {
			st := studentByRegNo(t, s, fmt.Sprintf("C%d-%03d", i, row))
			if got := studentOps(t, s, st.ID); len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("c%d.csv", i)) {
				t.Fatalf("student %s: %q", st.RegistrationNo, got)
			}
		}
	}
}

// BenchmarkImportRefs is what the references add to a 100,000-row import
// of new students: one insert of ~100 documents (and, for an update
// import of as many scattered students, as many documents again).
func BenchmarkImportRefs(b *testing.B) {
	s := New(mongotest.Database(b), Options{})
	for i := 0; b.Loop(); i++ {
		first := int64(i)*100_000 + 1
		if err := s.writeRefs(b.Context(), rangeRefs(bson.NewObjectID().Hex(), first, first+99_999)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStudentOperations100k reads an imported student's imports in a
// school of 100,000 students filled by one import (FerretDB: the read
// model's engine): by its references, and by its row's marks (a row
// imported before the references, read as on MongoDB: one pass over the
// students on FerretDB, which is why FerretDB relies on the backfill).
func BenchmarkStudentOperations100k(b *testing.B) {
	s := New(mongotest.Database(b), Options{QueryTimeout: 30 * time.Minute, BulkTimeout: 30 * time.Minute})
	if _, _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	plan, err := s.PlanImport(b.Context(), rowsOf("P", 100_000, "Amina"), nil, nil, ImportAdd)
	if err != nil || len(plan.Errors) > 0 {
		b.Fatal(plan.Errors, err)
	}
	if _, err := s.ApplyImport(b.Context(), plan, CommandLine); err != nil {
		b.Fatal(err)
	}
	for _, how := range []string{"references", "marks"} {
		if how == "marks" {
			if _, err := s.col(colHistorySlots).DeleteMany(b.Context(), d("_id", d("$regex", "^r:[0-9]"))); err != nil {
				b.Fatal(err)
			}
			s = New(s.db, Options{ReadModel: ReadModelOff, QueryTimeout: 30 * time.Minute})
		}
		b.Run(how, func(b *testing.B) {
			for b.Loop() {
				ops, err := s.StudentOperations(b.Context(), 50_000, true)
				if err != nil || len(ops) != 1 {
					b.Fatal(ops, err)
				}
			}
		})
	}
}
