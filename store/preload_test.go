package store

import (
	"sync/atomic"
	"testing"
	"time"
)

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
