package store

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// A dead writer's last command can land after the next writer rolled its
// operation back (FerretDB runs it to its end): here a late insert batch
// of an interrupted import. Its rows carry the rolled-back operation's
// number, so no reader sees them; once the record is old enough to be
// pruned they are removed (a second undo), never shown.
func TestLateRowsOfARolledBackOperationStayHidden(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	db := mongotest.Database(t)
	opts := Options{QueryTimeout: 2 * time.Minute, Now: clk.Now}
	if _, _, err := New(db, opts).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	crashAt(t, db, "commit", func(s *Store) {
		_, _, _ = s.ImportStudents(ctx, []StudentInput{{RegistrationNo: "R1", FirstName: "Rolled", SecondName: "Back"}}, []int{2})
	})
	if _, err := New(db, opts).RecoverOperations(ctx); err != nil {
		t.Fatal(err)
	}
	var rec opRecord
	if err := db.Collection(colOperations).FindOne(ctx, bson.D{{Key: "kind", Value: opImport}}).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	// The late batch: rows of the range the import reserved.
	late := bson.D{{Key: "ins", Value: rec.Seq}}
	raw, err := bson.Marshal(newStudentDoc(Student{ID: rec.First, RegistrationNo: "LATE1", FirstName: "Late", SecondName: "Row"}))
	if err != nil {
		t.Fatal(err)
	}
	var doc bson.D
	if err := bson.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colStudents).InsertOne(ctx, append(doc, late...)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		o := opts
		o.ReadModel = mode
		if got := register(t, New(db, o)); len(got) != 0 {
			t.Errorf("read model mode %d: readers see %q, want none", mode, got)
		}
	}
	// A later operation, then a day and more: closed records are pruned,
	// a rolled-back one after its undo is run once more.
	if added, _, err := New(db, opts).ImportStudents(ctx, []StudentInput{{RegistrationNo: "K1", FirstName: "Kept", SecondName: "Row"}}, []int{2}); err != nil || added != 1 {
		t.Fatalf("import: %d, %v", added, err)
	}
	clk.Advance(opKeepClosed + time.Hour)
	if _, err := New(db, opts).RecoverOperations(ctx); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		o := opts
		o.ReadModel = mode
		if got := register(t, New(db, o)); len(got) != 1 || got[0] != "K1 Kept Row  enrolled" {
			t.Errorf("read model mode %d: readers see %q, want only K1", mode, got)
		}
	}
	// The late row is gone, not only hidden: its registration number is free.
	if _, err := New(db, opts).CreateStudent(ctx, StudentInput{RegistrationNo: "LATE1", FirstName: "New", SecondName: "Student"}); err != nil {
		t.Errorf("the late row still holds its registration number: %v", err)
	}
}
