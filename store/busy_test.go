package store

import (
	"testing"
)

// TestOperationsRunning: an import running in the background counts in
// its own Store at once, and in another process's Store of the same
// school after its recovery pass (as a CLI import is seen by the app);
// never in another school's Store (cross-tenant: B's app must not be
// kept up, or let go, by A's import); and not once it has ended.
func TestOperationsRunning(t *testing.T) {
	a := newStore(t, Options{})
	a.insertBatch = 7
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	a.beforeInsert = func(batch int) {
		if batch == 0 {
			held <- struct{}{}
			<-hold
		}
	}
	other := New(a.db, Options{}) // another process on A's database
	b := newStore(t, Options{})   // school B
	plan, err := a.PlanImport(t.Context(), rowsOf("A", 20, "Ama"), nil, nil, ImportAdd)
	if err != nil {
		t.Fatal(err)
	}
	if n := a.OperationsRunning(); n != 0 {
		t.Fatalf("before the import: %d running", n)
	}
	run, err := a.StartImport(t.Context(), plan, Actor{Username: "ama"})
	if err != nil {
		t.Fatal(err)
	}
	<-held
	for _, s := range []*Store{other, b} {
		if _, err := s.RecoverOperations(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		s    *Store
		want int
	}{
		{"A's own process", a, 1},
		{"another process of A", other, 1},
		{"school B", b, 0},
	} {
		if got := tc.s.OperationsRunning(); got != tc.want {
			t.Errorf("while A imports, %s: %d running, want %d", tc.name, got, tc.want)
		}
	}
	close(hold)
	<-run.Finished()
	if _, err := run.Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.RecoverOperations(t.Context()); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"A": a, "another process of A": other} {
		if n := s.OperationsRunning(); n != 0 {
			t.Errorf("after the import, %s: %d running", name, n)
		}
	}
}
