package store

import (
	"sync/atomic"
	"testing"
	"time"
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

// TestPreloadLoadsBeforeTheFirstRead: Preload (a woken app's start)
// loads the read model in the background, so the first read does not
// load it again; a preloaded Store of school B holds B's students only
// (cross-tenant: the same IDs exist in A).
func TestPreloadLoadsBeforeTheFirstRead(t *testing.T) {
	a, b := newStore(t, Options{ReadModel: ReadModelOn}), newStore(t, Options{ReadModel: ReadModelOn})
	mustCreate(t, a, "A-1", "Ama", "Owusu")
	mustCreate(t, b, "B-1", "Kofi", "Mensah")
	for _, tc := range []struct {
		s    *Store
		want string
	}{{a, "A-1"}, {b, "B-1"}} {
		s := New(tc.s.db, Options{ReadModel: ReadModelOn}) // a starting app
		var loads atomic.Int32
		s.beforeLoad = func() { loads.Add(1) }
		s.Preload(t.Context())
		deadline := time.Now().Add(time.Minute)
		for {
			s.rm.mu.RLock()
			loaded := s.rm.snap != nil
			s.rm.mu.RUnlock()
			if loaded {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Preload loaded nothing within a minute")
			}
			time.Sleep(5 * time.Millisecond) // polling
		}
		pg, err := s.ListStudents(t.Context(), ListOptions{PerPage: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(pg.Students) != 1 || pg.Students[0].RegistrationNo != tc.want {
			t.Errorf("preloaded store lists %+v, want only %s", pg.Students, tc.want)
		}
		if n := loads.Load(); n != 1 {
			t.Errorf("%d loads, want 1 (the preload's)", n)
		}
	}
}
