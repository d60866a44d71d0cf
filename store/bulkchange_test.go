package store

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestChangeStudents: a bulk change of class and status sets them (the
// status date today), leaves students it would not change alone, records
// one history entry per changed student, refuses a bad value (nothing
// changed), and never touches another school holding the same IDs.
func TestChangeStudents(t *testing.T) {
	a, b := newStore(t, Options{}), newStore(t, Options{})
	for _, s := range []*Store{a, b} {
		if _, errs, err := s.ImportStudents(t.Context(), rowsOf("C", 6, "Amina"), nil); err != nil || errs != nil {
			t.Fatal(errs, err)
		}
	}
	bBefore := register(t, b)
	pg, err := a.ListStudents(t.Context(), ListOptions{Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	// B's row with the same ID as A's first is held by a bulk writer of
	// B (a mark of B's operation 77): A's change is not held by it.
	if _, err := b.col(colStudents).UpdateOne(t.Context(), d("_id", studentID(pg.Students[0].ID)), d("$addToSet", d(fieldLock, int64(77)))); err != nil {
		t.Fatal(err)
	}
	ids := []int64{pg.Students[0].ID, pg.Students[1].ID, pg.Students[2].ID, 999_999}
	actor := Actor{UserID: "u1", Username: "boss"}
	n, err := a.ChangeStudents(t.Context(), ids, StudentsChange{SetStatus: true, Status: StatusLeft}, actor)
	if err != nil || n != 3 {
		t.Fatalf("change status: %d, %v", n, err)
	}
	n, err = a.ChangeStudents(t.Context(), ids[:2], StudentsChange{SetStatus: true, Status: StatusLeft, SetClass: true, Class: "3C"}, actor)
	if err != nil || n != 2 {
		t.Fatalf("change class: %d, %v", n, err)
	}
	// Nothing to change: no operation, no entry.
	if n, err := a.ChangeStudents(t.Context(), ids[:2], StudentsChange{SetClass: true, Class: "3C"}, actor); err != nil || n != 0 {
		t.Fatalf("same class again: %d, %v", n, err)
	}
	for i, want := range []string{"3C left", "3C left", " left", " enrolled"} {
		st, err := a.Student(t.Context(), pg.Students[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Class + " " + st.Status; got != want {
			t.Errorf("student %d: %q, want %q", i, got, want)
		}
		if st.Status == StatusLeft && st.StatusDate == "" {
			t.Errorf("student %d: left without a status date", i)
		}
	}
	es, err := a.RecentHistory(t.Context(), 100, false)
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, e := range es {
		if e.Action == ActionChange {
			changes++
		}
	}
	if changes != 5 {
		t.Errorf("%d change entries, want 5 (one per changed student and change)", changes)
	}
	// A bad value: FieldErrors, nothing changed.
	before := register(t, a)
	_, err = a.ChangeStudents(t.Context(), ids, StudentsChange{SetStatus: true, Status: "expelled"}, actor)
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Errorf("bad status: %v, want FieldErrors", err)
	}
	_, err = a.ChangeStudents(t.Context(), ids, StudentsChange{SetClass: true, Class: strings.Repeat("x", 500)}, actor)
	if !errors.As(err, &fe) {
		t.Errorf("a 500-letter class: %v, want FieldErrors", err)
	}
	if got := register(t, a); strings.Join(got, "|") != strings.Join(before, "|") {
		t.Error("a refused change changed students")
	}
	// Cross-tenant: B (same IDs, same registration numbers) untouched:
	// no row of B marked, changed or un-marked by A's changes.
	if got := register(t, b); strings.Join(got, "|") != strings.Join(bBefore, "|") {
		t.Errorf("school B changed by A's bulk change:\n%v\nwant\n%v", got, bBefore)
	}
	for i, st := range pg.Students {
		raw := rawStudent(t, b, st.ID)
		lk, _ := raw.Lookup(fieldLock).ArrayOK()
		if vals, _ := lk.Values(); i == 0 && (len(vals) != 1 || vals[0].AsInt64() != 77) || i > 0 && len(vals) > 0 {
			t.Errorf("school B's student %d holds %v, want %v", st.ID, lk, i == 0)
		}
		if !raw.Lookup("upd").IsZero() || !raw.Lookup("prev").IsZero() {
			t.Errorf("school B's student %d marked by A's change: %v", st.ID, raw)
		}
	}
}

// rawStudent is student id as stored, marks included.
func rawStudent(t *testing.T, s *Store, id int64) bson.Raw {
	t.Helper()
	var raw bson.Raw
	if err := s.col(colStudents).FindOne(t.Context(), d("_id", studentID(id))).Decode(&raw); err != nil {
		t.Fatalf("student %d: %v", id, err)
	}
	return raw
}

// held reports whether a bulk writer holds raw (lk not empty).
func held(raw bson.Raw) bool {
	lk, _ := raw.Lookup(fieldLock).ArrayOK()
	vals, _ := lk.Values()
	return len(vals) > 0
}
