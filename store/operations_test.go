package store

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// deadOwner names a process that does not exist on this host: an
// operation it owns is one whose writer died.
var deadOwner = func() *opOwner {
	o := thisProcess()
	o.PID, o.Start = 1<<30, "1"
	return &o
}()

// crashAt runs write on a Store of db whose process "dies" (its
// goroutine ends, nothing else of the call runs) when point is reached:
// "insert:N" before insert batch N, "commit" before the commit,
// "committed" right after it.
func crashAt(t *testing.T, db *mongo.Database, point string, write func(s *Store)) {
	t.Helper()
	s := New(db, Options{QueryTimeout: 2 * time.Minute})
	s.fakeOwner = deadOwner
	s.insertBatch = 7
	die := func(at string) {
		if at == point {
			runtime.Goexit()
		}
	}
	s.beforeInsert = func(batch int) { die(fmt.Sprintf("insert:%d", batch)) }
	s.opHook = die
	done := make(chan bool)
	go func() {
		finished := false
		defer func() { done <- finished }()
		write(s)
		finished = true
	}()
	if <-done {
		t.Fatalf("the write finished: it never reached %s", point)
	}
}

// register is every student as a reader sees them, through the list and
// through the export, which must agree.
func register(t *testing.T, s *Store) []string {
	t.Helper()
	pg, err := s.ListStudents(t.Context(), ListOptions{PerPage: MaxPerPage, Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range pg.Students {
		out = append(out, st.RegistrationNo+" "+st.FirstName+" "+st.SecondName+" "+st.Class+" "+st.Status)
	}
	if int(pg.Total) != len(out) {
		t.Fatalf("list total %d, %d rows", pg.Total, len(out))
	}
	var buf bytes.Buffer
	if err := s.ExportStudents(t.Context(), &buf, ExportOptions{NoBOM: true}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n") - 1; lines != len(out) {
		t.Fatalf("export has %d students, the list %d", lines, len(out))
	}
	slices.Sort(out)
	return out
}

func historyActions(t *testing.T, s *Store) []string {
	t.Helper()
	es, err := s.RecentHistory(t.Context(), 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.Action))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func rowsOf(prefix string, n int, first string) []StudentInput {
	rows := make([]StudentInput, n)
	for i := range rows {
		rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("%s-%03d", prefix, i), FirstName: first, SecondName: "Otieno"}
	}
	return rows
}

// TestOperationCrashIsAllOrNothing kills the writer of an import, an
// update import, a bulk delete and a bulk change (class and status) at several points, with the read model
// on (FerretDB's readers) and off (MongoDB's), and checks that readers
// (a loaded model, a fresh Store, the export, the history) see none of it
// (or all of it once committed), that the next writer rolls it back (or
// finishes it) with an entry in the history, and that the same write then
// succeeds.
func TestOperationCrashIsAllOrNothing(t *testing.T) {
	base := rowsOf("B", 20, "Amina")
	type op struct {
		name  string
		write func(t *testing.T, s *Store) error
	}
	importNew := op{"import", func(t *testing.T, s *Store) error {
		_, errs, err := s.ImportStudents(t.Context(), rowsOf("N", 30, "Kofi"), nil)
		if len(errs) > 0 {
			t.Fatalf("row errors: %v", errs)
		}
		return err
	}}
	importUpdate := op{"update", func(t *testing.T, s *Store) error {
		rows := append(rowsOf("B", 20, "Zawadi"), rowsOf("U", 10, "Kofi")...)
		plan, err := s.PlanImport(t.Context(), rows, nil, nil, ImportUpdate)
		if err != nil || len(plan.Errors) > 0 {
			t.Fatalf("plan: %v %v", plan.Errors, err)
		}
		_, err = s.ApplyImport(t.Context(), plan, CommandLine)
		return err
	}}
	bulkDelete := op{"delete", func(t *testing.T, s *Store) error {
		pg, err := s.ListStudents(t.Context(), ListOptions{PerPage: MaxPerPage})
		if err != nil {
			return err
		}
		var ids []int64
		for _, st := range pg.Students[:15] {
			ids = append(ids, st.ID)
		}
		_, err = s.DeleteStudents(t.Context(), ids, CommandLine)
		return err
	}}
	bulkChange := op{"change", func(t *testing.T, s *Store) error {
		pg, err := s.ListStudents(t.Context(), ListOptions{PerPage: MaxPerPage})
		if err != nil {
			return err
		}
		var ids []int64
		for _, st := range pg.Students[3:18] {
			ids = append(ids, st.ID)
		}
		_, err = s.ChangeStudents(t.Context(), ids, StudentsChange{SetClass: true, Class: "2B", SetStatus: true, Status: StatusGraduated}, CommandLine)
		return err
	}}
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		for _, tc := range []struct {
			op        op
			point     string
			committed bool
		}{
			{importNew, "insert:0", false},
			{importNew, "insert:2", false},
			{importNew, "commit", false},
			{importNew, "committed", true},
			{importUpdate, "insert:1", false},
			{importUpdate, "commit", false},
			{importUpdate, "committed", true},
			{bulkDelete, "commit", false},
			{bulkDelete, "committed", true},
			{bulkChange, "insert:1", false}, // half its rows written
			{bulkChange, "commit", false},
			{bulkChange, "committed", true},
		} {
			t.Run(fmt.Sprintf("model%d/%s/%s", mode, tc.op.name, tc.point), func(t *testing.T) {
				reader := newStore(t, Options{ReadModel: mode})
				if _, errs, err := reader.ImportStudents(t.Context(), base, nil); err != nil || errs != nil {
					t.Fatal(errs, err)
				}
				before := register(t, reader)
				beforeHistory := historyActions(t, reader)
				// What the write gives, on a twin database.
				twin := newStore(t, Options{ReadModel: mode})
				if _, errs, err := twin.ImportStudents(t.Context(), base, nil); err != nil || errs != nil {
					t.Fatal(errs, err)
				}
				if err := tc.op.write(t, twin); err != nil {
					t.Fatal(err)
				}
				after := register(t, twin)

				crashAt(t, reader.db, tc.point, func(s *Store) { _ = tc.op.write(t, s) })
				want := before
				if tc.committed {
					want = after
				}
				for name, s := range map[string]*Store{"running reader": reader, "fresh reader": New(reader.db, Options{ReadModel: mode})} {
					if got := register(t, s); !slices.Equal(got, want) {
						t.Fatalf("%s sees %d students, want %d (committed %v):\n%v", name, len(got), len(want), tc.committed, got)
					}
				}
				if got := historyActions(t, reader); !tc.committed && !slices.Equal(got, beforeHistory) {
					t.Fatalf("history before the roll-back shows %v, want %v", got, beforeHistory)
				}

				n, err := reader.RecoverOperations(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if got := register(t, reader); !slices.Equal(got, want) {
					t.Fatalf("after recovery: %d students, want %d", len(got), len(want))
				}
				if tc.committed {
					if n != 0 {
						t.Fatalf("rolled back %d committed operations", n)
					}
					return
				}
				if n != 1 || !slices.Contains(historyActions(t, reader), string(ActionRolledBack)) {
					t.Fatalf("rolled back %d, history %v", n, historyActions(t, reader))
				}
				if err := tc.op.write(t, reader); err != nil {
					t.Fatalf("the same write again: %v", err)
				}
				if got := register(t, reader); !slices.Equal(got, after) {
					t.Fatalf("after the write again: %d students, want %d", len(got), len(after))
				}
				if got := register(t, New(reader.db, Options{ReadModel: mode})); !slices.Equal(got, after) {
					t.Fatalf("a fresh reader after the write again: %d students, want %d", len(got), len(after))
				}
			})
		}
	}
}

// TestOperationCrossTenant: an interrupted import of school A is never
// seen, rolled back or committed in school B, whose students have the
// same IDs and registration numbers.
func TestOperationCrossTenant(t *testing.T) {
	a, b := newStore(t, Options{}), newStore(t, Options{})
	rows := rowsOf("X", 25, "Ama")
	crashAt(t, a.db, "commit", func(s *Store) { _, _, _ = s.ImportStudents(context.Background(), rows, nil) })
	if _, errs, err := b.ImportStudents(t.Context(), rows, nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	bWant := register(t, b)
	if n, err := b.RecoverOperations(t.Context()); err != nil || n != 0 {
		t.Fatalf("school B recovered %d operations (%v); A's is not B's", n, err)
	}
	if got := register(t, a); len(got) != 0 {
		t.Fatalf("school A shows %d students of its interrupted import", len(got))
	}
	if n, err := a.RecoverOperations(t.Context()); err != nil || n != 1 {
		t.Fatalf("school A rolled back %d (%v), want 1", n, err)
	}
	if got := register(t, b); !slices.Equal(got, bWant) {
		t.Fatalf("school B changed by A's roll-back: %d students, want %d", len(got), len(bWant))
	}
	if slices.Contains(historyActions(t, b), string(ActionRolledBack)) {
		t.Fatal("school B's history shows A's roll-back")
	}
	if _, errs, err := a.ImportStudents(t.Context(), rows, nil); err != nil || errs != nil {
		t.Fatalf("school A's import again: %v %v", errs, err)
	}
}

// TestRollBackBoundedBatches rolls back an import bigger than one delete
// batch (SQLite refuses more than 32,766 variables in one statement).
func TestRollBackBoundedBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 12,000 rows")
	}
	s := newStore(t, Options{})
	rows := rowsOf("Q", 12_000, "Ama")
	for i := range rows {
		rows[i].RegistrationNo = fmt.Sprintf("Q-%05d", i)
	}
	crashAt(t, s.db, "commit", func(w *Store) {
		w.insertBatch = defaultInsertBatch
		_, _, _ = w.ImportStudents(context.Background(), rows, nil)
	})
	if n, err := s.RecoverOperations(t.Context()); err != nil || n != 1 {
		t.Fatalf("rolled back %d: %v", n, err)
	}
	if n, err := s.col(colStudents).CountDocuments(t.Context(), map[string]any{}); err != nil || n != 0 {
		t.Fatalf("%d rows left (%v)", n, err)
	}
}

// TestRollBackRestoresChangedRowsInBatches rolls back an update import of
// 11 rows reading at most 4 at a time; the first roll-back is cut after
// its first batch, and the next one finishes: every row has its values
// from before and no mark.
func TestRollBackRestoresChangedRowsInBatches(t *testing.T) {
	s := newStore(t, Options{})
	if _, errs, err := s.ImportStudents(t.Context(), rowsOf("R", 11, "Amina"), nil); err != nil || len(errs) > 0 {
		t.Fatalf("import: %v %v", errs, err)
	}
	want := register(t, s)
	crashAt(t, s.db, "commit", func(w *Store) {
		plan, err := w.PlanImport(t.Context(), rowsOf("R", 11, "Zawadi"), nil, nil, ImportUpdate)
		if err != nil || len(plan.Changed) != 11 {
			t.Errorf("plan: %d changed, %v", len(plan.Changed), err)
			return
		}
		_, _ = w.ApplyImport(t.Context(), plan, CommandLine)
	})
	marked := func() int64 {
		n, err := s.col(colStudents).CountDocuments(t.Context(), d("upd", d("$exists", true)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := marked(); n != 11 {
		t.Fatalf("%d rows marked before the roll-back, want 11", n)
	}
	// The first roll-back dies at its second batch.
	crashAt(t, s.db, "restore:2", func(w *Store) {
		w.markBatch = 4
		batches := 0
		w.opHook = func(at string) {
			if at == "restore" {
				if batches++; batches == 2 {
					runtime.Goexit()
				}
			}
		}
		_, _ = w.RecoverOperations(t.Context())
	})
	if n := marked(); n != 7 {
		t.Fatalf("%d rows marked after one batch of 4, want 7", n)
	}
	if got := register(t, s); !slices.Equal(got, want) {
		t.Fatalf("half-way through the roll-back readers see %v, want %v", got, want)
	}
	var sizes []int
	s.markBatch = 4
	s.opHook = func(at string) {
		if at == "restore" {
			n := marked()
			sizes = append(sizes, int(min(n, 4)))
		}
	}
	if _, err := s.RecoverOperations(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := marked(); n != 0 || !slices.Equal(sizes, []int{4, 3}) {
		t.Fatalf("%d rows still marked; batches %v, want [4 3]", n, sizes)
	}
	if got := register(t, s); !slices.Equal(got, want) {
		t.Fatalf("after the roll-back readers see %v, want %v", got, want)
	}
}

// TestRollBackRefusesARowItCannotAddress: a row marked by an operation
// whose _id is not in studentID's form (an int64 of schema 3 left behind)
// is found by its mark but never by its _id; the roll-back says so instead
// of looking for it forever.
func TestRollBackRefusesARowItCannotAddress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	const seq = 41
	if _, err := s.col(colStudents).InsertOne(ctx, bson.D{{Key: "_id", Value: int64(7)}, {Key: "registration_no", Value: "S007"}, {Key: "upd", Value: int64(seq)}}); err != nil {
		t.Fatal(err)
	}
	err := s.restoreChanged(ctx, seq)
	if err == nil || !strings.Contains(err.Error(), "not found by its _id") {
		t.Fatalf("restoreChanged = %v, want the row named as not found by its _id", err)
	}
}

// Two writers of one process that begin at once both try the next
// operation number; the loser takes the one after. The winner's operation
// still counts as running in this process, so no writer of it rolls that
// operation back as one whose writer is gone. (Before, the loser took
// away the winner's mark: four imports at once in one app, as two staff
// importing through the browser, failed now and then with "rolled back
// by another process".)
func TestBeginOpRaceKeepsTheWinnerRunning(t *testing.T) {
	s := newStore(t, Options{})
	var won *runningOp
	s.opHook = func(at string) {
		if at != "begin" || won != nil {
			return
		}
		// The other writer reads the same last number and inserts first.
		s.opHook = nil
		op, err := s.beginOp(t.Context(), opRecord{Kind: opImport})
		if err != nil {
			t.Fatal(err)
		}
		won = op
	}
	lost, err := s.beginOp(t.Context(), opRecord{Kind: opImport})
	if err != nil {
		t.Fatal(err)
	}
	if won == nil {
		t.Fatal("the hook never ran")
	}
	if won.rec.Seq != lost.rec.Seq-1 {
		t.Fatalf("operations %d and %d: want the second to take the number after the first", won.rec.Seq, lost.rec.Seq)
	}
	for _, op := range []*runningOp{won, lost} {
		if s.ownerGone(&op.rec) {
			t.Fatalf("operation %d counts as gone while its writer runs", op.rec.Seq)
		}
	}
	won.stop()
	if !s.ownerGone(&won.rec) {
		t.Fatalf("operation %d counts as running after its writer stopped", won.rec.Seq)
	}
	if s.ownerGone(&lost.rec) {
		t.Fatalf("operation %d counts as gone while its writer runs", lost.rec.Seq)
	}
	lost.stop()
}
