package store

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestStudentIDEncoding: the stored form sorts as the numbers do, and
// reading takes either form back to the same int64.
func TestStudentIDEncoding(t *testing.T) {
	ids := []int64{0, 1, 9, 10, 99, 100, 123456789, 1<<53 + 1, 1<<63 - 1}
	var enc []string
	for _, id := range ids {
		s := studentIDString(id)
		if len(s) != studentIDWidth {
			t.Errorf("%d: %q is %d digits, want %d", id, s, len(s), studentIDWidth)
		}
		enc = append(enc, s)
		for _, v := range []any{studentID(id), id, int32(id)} {
			if v == int32(id) && int64(int32(id)) != id {
				continue
			}
			typ, b, err := bson.MarshalValue(v)
			if err != nil {
				t.Fatal(err)
			}
			var k studentKey
			if err := k.UnmarshalBSONValue(byte(typ), b); err != nil || int64(k) != id {
				t.Errorf("read %T %v: %d, %v; want %d", v, v, k, err, id)
			}
		}
	}
	if !slices.IsSorted(enc) {
		t.Errorf("stored IDs do not sort as the numbers: %q", enc)
	}
	for _, bad := range []any{"12a", 1.5, true} {
		typ, b, _ := bson.MarshalValue(bad)
		var k studentKey
		if err := k.UnmarshalBSONValue(byte(typ), b); err == nil {
			t.Errorf("read %v as the student ID %d, want an error", bad, k)
		}
	}
}

var storedIDForm = regexp.MustCompile(`^[0-9]{19}$`)

// assertStringIDs fails unless every stored student's _id (and every
// journal entry's student) is the 19-digit string of schema 4.
func assertStringIDs(t *testing.T, s *Store, step string) {
	t.Helper()
	cur, err := s.col(colStudents).Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var raws []bson.Raw
	if err := cur.All(t.Context(), &raws); err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		v := r.Lookup("_id")
		if str, ok := v.StringValueOK(); !ok || !storedIDForm.MatchString(str) {
			t.Errorf("%s: a student stored with _id %v (BSON %s), want a 19-digit string", step, v, v.Type)
		}
	}
	cur, err = s.col(colJournal).Find(t.Context(), d("student", d("$exists", true)))
	if err != nil {
		t.Fatal(err)
	}
	raws = nil
	if err := cur.All(t.Context(), &raws); err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		v := r.Lookup("student", "_id")
		if str, ok := v.StringValueOK(); !ok || !storedIDForm.MatchString(str) {
			t.Errorf("%s: a journal entry carries a student _id %v (BSON %s), want a 19-digit string", step, v, v.Type)
		}
	}
}

// TestStudentOperationsFindTheirRowByStringID runs every write and read
// of one or some students by ID, on both read paths: each must find its
// row (an int reaching a filter of string _ids matches nothing, silently)
// and leave only string _ids behind.
func TestStudentOperationsFindTheirRowByStringID(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t, Options{ReadModel: mode})
			// A fresh Store of the same database reads from the collection
			// (or loads its own model), not from s's memory.
			fresh := func() *Store { return New(s.db, Options{ReadModel: mode, QueryTimeout: s.opts.QueryTimeout}) }
			actor := Actor{UserID: "u1", Username: "boss"}
			if _, errs, err := s.ImportStudents(ctx, rowsOf("S", 12, "Amina"), nil); err != nil || errs != nil {
				t.Fatal(errs, err)
			}
			one := mustCreate(t, s, "S-HAND", "Baraka", "Mwangi")
			assertStringIDs(t, s, "create and import")
			ids, total, err := s.MatchingIDs(ctx, ListOptions{Query: "Amina"}, 100)
			if err != nil || total != 12 || len(ids) != 12 {
				t.Fatalf("matching: %v %d %v", ids, total, err)
			}
			newest := slices.Max(ids)
			if one.ID <= newest {
				t.Fatalf("the hand-made student %d is not the newest (%d)", one.ID, newest)
			}
			for _, r := range []*Store{s, fresh()} {
				if got, err := r.Student(ctx, one.ID); err != nil || got.RegistrationNo != "S-HAND" {
					t.Fatalf("read student %d: %+v %v", one.ID, got, err)
				}
			}

			// Hand edit and hand delete of the newest.
			if _, err := s.UpdateStudent(ctx, one.ID, StudentInput{RegistrationNo: "S-HAND", FirstName: "Baraka", SecondName: "Otieno"}); err != nil {
				t.Fatalf("edit: %v", err)
			}
			if got, err := fresh().Student(ctx, one.ID); err != nil || got.SecondName != "Otieno" || got.ID != one.ID {
				t.Fatalf("after the edit: %+v %v", got, err)
			}
			if exists, err := s.regNoExists(ctx, "s-hand", one.ID); err != nil || exists {
				t.Fatalf("the student's own number counted as taken: %v %v", exists, err)
			}
			if err := s.DeleteStudent(ctx, one.ID); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if _, err := fresh().Student(ctx, one.ID); err == nil {
				t.Fatal("deleted student still read")
			}

			// Bulk change, bulk delete, reads by ID.
			if n, err := s.ChangeStudents(ctx, []int64{newest, ids[0]}, StudentsChange{SetClass: true, Class: "4B"}, actor); err != nil || n != 2 {
				t.Fatalf("bulk change: %d %v", n, err)
			}
			got, err := fresh().StudentsByID(ctx, []int64{newest, ids[0], 999_999})
			if err != nil || len(got) != 2 {
				t.Fatalf("by ID: %+v %v", got, err)
			}
			for _, st := range got {
				if st.Class != "4B" {
					t.Errorf("student %d: class %q after the bulk change", st.ID, st.Class)
				}
			}
			if n, err := s.DeleteStudents(ctx, []int64{ids[1], ids[2]}, actor); err != nil || n != 2 {
				t.Fatalf("bulk delete: %d %v", n, err)
			}
			if n := count(t, fresh()); n != 10 {
				t.Fatalf("%d students after the bulk delete, want 10", n)
			}

			// An update import, then one rolled back after a crash.
			plan, err := s.PlanImport(ctx, rowsOf("S", 12, "Zawadi")[3:], nil, nil, ImportUpdate)
			if err != nil || len(plan.Changed) != 9 {
				t.Fatalf("plan: %d changed, %v", len(plan.Changed), err)
			}
			if _, err := s.ApplyImport(ctx, plan, actor); err != nil {
				t.Fatalf("update import: %v", err)
			}
			want := register(t, fresh())
			for _, line := range want {
				if !strings.HasPrefix(line, "S-000 ") && !strings.Contains(line, "Zawadi") {
					t.Errorf("not updated by the import: %s", line)
				}
			}
			crashAt(t, s.db, "commit", func(w *Store) {
				plan, err := w.PlanImport(ctx, rowsOf("S", 12, "Imani")[3:], nil, nil, ImportUpdate)
				if err != nil || len(plan.Changed) != 9 {
					t.Errorf("plan: %d changed, %v", len(plan.Changed), err)
					return
				}
				_, _ = w.ApplyImport(ctx, plan, CommandLine)
			})
			crashAt(t, s.db, "commit", func(w *Store) {
				_, _, _ = w.ImportStudents(ctx, rowsOf("N", 9, "Neema"), nil)
			})
			// (the import's writer rolled the first back before its own)
			if n, err := fresh().RecoverOperations(ctx); err != nil || n < 1 {
				t.Fatalf("roll back: %d, %v", n, err)
			}
			if got := register(t, fresh()); !slices.Equal(got, want) {
				t.Fatalf("after the roll-backs:\n%v\nwant\n%v", got, want)
			}
			// The roll-backs found their rows: none carries their marks.
			v, err := s.opsView(ctx)
			if err != nil || len(v.hidden) != 2 {
				t.Fatalf("rolled back: %v %v", v.hidden, err)
			}
			hidden := v.list(v.hidden)
			marked, err := s.col(colStudents).CountDocuments(ctx, d("$or", bson.A{d("upd", d("$in", hidden)), d("ins", d("$in", hidden))}))
			if err != nil || marked != 0 {
				t.Fatalf("%d rows still marked by the rolled-back operations %v (%v)", marked, hidden, err)
			}
			ops, err := fresh().StudentOperations(ctx, ids[5], false)
			if err != nil || len(ops) == 0 {
				t.Fatalf("student %d's operations: %+v %v", ids[5], ops, err)
			}
			// A new Store claims IDs above every stored one.
			next := mustCreate(t, fresh(), "S-NEXT", "Neema", "Wanjiru")
			if next.ID <= one.ID {
				t.Errorf("new student %d, not above %d", next.ID, one.ID)
			}
			assertStringIDs(t, s, "after every operation")
		})
	}
}
