package store

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestStartImportInBackground: StartImport returns once the operation is
// recorded (pending, invisible to readers); the rows are written after
// the caller's context has ended; the outcome is in the run and in the
// operation record: committed, or rolled back when cancelled (with its
// history entry); Close waits for a running import.
func TestStartImportInBackground(t *testing.T) {
	rows := rowsOf("B", 30, "Ama")
	for _, tc := range []struct {
		name   string
		cancel bool // Cancel while the first batch waits
		close  bool // Close the Store while the first batch waits
	}{
		{name: "commit"},
		{name: "cancel", cancel: true},
		{name: "close waits", close: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Options{})
			s.insertBatch = 7
			hold, held := make(chan struct{}), make(chan struct{}, 1)
			s.beforeInsert = func(batch int) {
				if batch == 0 {
					held <- struct{}{}
					<-hold
				}
			}
			plan, err := s.PlanImport(t.Context(), rows, nil, nil, ImportAdd)
			if err != nil {
				t.Fatal(err)
			}
			reqCtx, endRequest := context.WithCancel(t.Context())
			run, err := s.StartImport(reqCtx, plan, Actor{Username: "ama"})
			if err != nil {
				t.Fatal(err)
			}
			endRequest() // the request that started it is over
			<-held
			info, err := s.Operation(t.Context(), run.Op)
			if err != nil || info.State != OpPending || !info.Import || info.Added != len(rows) || info.Username != "ama" {
				t.Fatalf("while running: %+v %v", info, err)
			}
			if got := register(t, s); len(got) != 0 {
				t.Fatalf("readers see %d students of a pending import", len(got))
			}
			if tc.cancel {
				run.Cancel()
			}
			closed := make(chan error, 1)
			if tc.close {
				go func() { closed <- s.Close(context.Background()) }()
			}
			close(hold)
			<-run.Finished()
			res, err := run.Result()
			if tc.close {
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
				s = New(s.db, Options{}) // what the next process sees
			}
			info, ierr := s.Operation(t.Context(), run.Op)
			if ierr != nil {
				t.Fatal(ierr)
			}
			got := register(t, s)
			if tc.cancel {
				if !errors.Is(err, context.Canceled) || info.State != OpRolledBack || info.RolledBack == "" || len(got) != 0 {
					t.Fatalf("cancelled: err %v, %+v, %d students", err, info, len(got))
				}
				if !slices.Contains(historyActions(t, s), string(ActionRolledBack)) {
					t.Fatal("no roll-back entry in the history")
				}
				return
			}
			if err != nil || res.Added != len(rows) || run.Done() != len(rows) || info.State != OpCommitted || len(got) != len(rows) {
				t.Fatalf("err %v, %+v, done %d, %+v, %d students", err, res, run.Done(), info, len(got))
			}
		})
	}
	s := newStore(t, Options{})
	if _, err := s.Operation(t.Context(), 42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown operation: %v", err)
	}
}
