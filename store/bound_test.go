package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/internal/mongotest"
)

// fill inserts n students directly, in batches (fast on FerretDB).
func fill(t *testing.T, s *Store, n int) {
	t.Helper()
	now := s.now()
	for start := 0; start < n; start += 1000 {
		docs := make([]studentDoc, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			docs = append(docs, newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("F-%06d", i),
				FirstName: "Fill", SecondName: fmt.Sprintf("Er%d", i), CreatedAt: now, UpdatedAt: now}))
		}
		if _, err := s.col(colStudents).InsertMany(t.Context(), docs); err != nil {
			t.Fatal(err)
		}
	}
}

// A search that has to read a large collection is stopped at the store's
// deadline, with an error that says so, instead of running on.
func TestDeadlineStopsSlowQuery(t *testing.T) {
	t.Parallel()
	// The database's own queries (the read model would answer from
	// memory; its load is bounded separately, see below).
	s := newStore(t, Options{ReadModel: ReadModelOff})
	fill(t, s, 5000)
	// Without a deadline the query takes far longer than the one below
	// (the sorted search reads and sorts every document on FerretDB).
	s.opts.QueryTimeout = 5 * time.Millisecond
	start := time.Now()
	_, err := s.ListStudents(t.Context(), ListOptions{Query: "nobody matches this", Sort: "-second_name"})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !IsTimeout(err) {
		t.Fatalf("slow search = %v, want ErrTimeout", err)
	}
	// Generous for a busy machine; the point is that it did not run to the end.
	if took > 10*time.Second {
		t.Fatalf("deadline of 5ms answered after %v", took)
	}
	// A caller's own, earlier deadline wins over the store's.
	s.opts.QueryTimeout = time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	if _, err := s.ListStudents(ctx, ListOptions{Query: "nobody", Sort: "first_name"}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("search under a 5ms caller deadline = %v, want ErrTimeout", err)
	}
	// With the read model, a request waits for the model's first load
	// within its own deadline only.
	m := New(s.db, Options{ReadModel: ReadModelOn, QueryTimeout: 5 * time.Millisecond})
	if _, err := m.ListStudents(t.Context(), ListOptions{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("list while the read model loads, 5ms deadline = %v, want ErrTimeout", err)
	}
}

// On a real MongoDB (MONGODB_URI), the list queries use the schema 2
// indexes: explain shows an index scan, no collection scan, no in-memory
// sort. FerretDB's SQLite backend pushes down nothing of these queries
// (docs/BENCHMARKS.md), so there is nothing to assert: the test says so
// and skips.
func TestListUsesIndexesOnMongoDB(t *testing.T) {
	if os.Getenv(mongotest.EnvURI) == "" {
		t.Skip("MONGODB_URI is not set: explain plans are checked on a real MongoDB only (FerretDB SQLite pushes no filter, sort or index down)")
	}
	t.Parallel()
	s := newStore(t, Options{})
	fill(t, s, 2000)
	for _, sort := range []string{"registration_no", "-registration_no", "first_name", "-first_name", "second_name", "-second_name", "id", "-id"} {
		cmd := bson.D{{Key: "explain", Value: bson.D{
			{Key: "find", Value: colStudents},
			{Key: "filter", Value: bson.D{}},
			{Key: "sort", Value: sortSpec(sort)},
			{Key: "skip", Value: 500},
			{Key: "limit", Value: 50},
		}}, {Key: "verbosity", Value: "queryPlanner"}}
		var out bson.M
		if err := s.db.RunCommand(t.Context(), cmd).Decode(&out); err != nil {
			t.Fatal(err)
		}
		plan := fmt.Sprint(out["queryPlanner"])
		if !strings.Contains(plan, "IXSCAN") || strings.Contains(plan, "COLLSCAN") || strings.Contains(plan, "stage:SORT ") {
			t.Errorf("sort %s: plan does not walk an index: %s", sort, plan)
		}
	}
}

func TestIsBusy(t *testing.T) {
	busy := mongo.CommandError{Code: 1, Name: "InternalError", Message: "[msg_insert.go:168 handler.(*Handler).MsgInsert] " +
		"[collection.go:135 sqlite.(*collection).InsertAll.func1] database is locked (5) (SQLITE_BUSY)"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"FerretDB's answer", busy, true},
		{"wrapped", fmt.Errorf("authenticate: reserve login attempt: %w", busy), true},
		{"another server error", mongo.CommandError{Code: 1, Message: "no such table"}, false},
		{"our own words", errors.New("SQLITE_BUSY"), false},
		{"a deadline", context.DeadlineExceeded, false},
		{"nil", nil, false},
	} {
		if got := IsBusy(tc.err); got != tc.want {
			t.Errorf("%s: IsBusy = %v, want %v", tc.name, got, tc.want)
		}
	}
}
