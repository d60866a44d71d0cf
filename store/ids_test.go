package store

import (
	"fmt"
	"sync"
	"testing"
)

// Parallel creates and imports never share an ID: on FerretDB the
// findAndModify $inc used before is not atomic and did.
func TestParallelCreatesUniqueIDs(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	other := New(s.db, Options{}) // a second Store on the same database, as a second app instance
	const creators, each = 8, 5
	ids := make(chan int64, creators*each+creators*3)
	errs := make(chan error, creators*(each+1))
	var wg sync.WaitGroup
	for c := range creators {
		wg.Go(func() {
			st := s
			if c%2 == 1 {
				st = other
			}
			for i := range each {
				got, err := st.CreateStudent(t.Context(), StudentInput{RegistrationNo: fmt.Sprintf("P-%d-%d", c, i), FirstName: "Par", SecondName: "Allel"})
				if err != nil {
					errs <- err
					return
				}
				ids <- got.ID
			}
			first, err := st.allocateIDs(t.Context(), 3)
			if err != nil {
				errs <- err
				return
			}
			for k := range int64(3) {
				ids <- first + k
			}
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Errorf("parallel create: %v", err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if id < 1 || seen[id] {
			t.Errorf("id %d handed out twice (or < 1)", id)
		}
		seen[id] = true
	}
	if len(seen) != creators*(each+3) {
		t.Fatalf("%d distinct ids, want %d", len(seen), creators*(each+3))
	}
	if n := count(t, s); n != creators*each {
		t.Fatalf("%d students, want %d", n, creators*each)
	}
}

// A schema 1 database continues after its $inc counter and its students.
func TestIDsContinueAfterLegacyCounter(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	if _, err := s.col(colCounters).InsertOne(t.Context(), d("_id", legacySeqDoc)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colCounters).UpdateOne(t.Context(), d("_id", legacySeqDoc), d("$set", d("seq", int64(41)))); err != nil {
		t.Fatal(err)
	}
	if st := mustCreate(t, s, "L-1", "After", "Legacy"); st.ID != 42 {
		t.Fatalf("first id after legacy seq 41 = %d, want 42", st.ID)
	}
	if st := mustCreate(t, s, "L-2", "After", "Legacy"); st.ID != 43 {
		t.Fatalf("second id = %d, want 43", st.ID)
	}
}
