package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// steppingClock is a clock the test moves, also backwards.
type steppingClock struct{ t time.Time }

func (c *steppingClock) now() time.Time { return c.t }

// TestHistoryChainMatchesFullSort fills a history with entries older than
// the chain (legacy), entries in batches (times equal, going backwards),
// entries of committed, pending and rolled-back operations and entries
// about accounts, and checks that every page and the latest entries read
// from the chain (the read model's way: FerretDB) are exactly those of the
// sorted, counted query (MongoDB's way), for several filters and pages.
func TestHistoryChainMatchesFullSort(t *testing.T) {
	ctx := t.Context()
	clock := &steppingClock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	s := newStore(t, Options{Now: clock.now, ReadModel: ReadModelOn})
	old := New(s.db, Options{Now: clock.now, ReadModel: ReadModelOff, QueryTimeout: 2 * time.Minute})

	// Legacy entries, as recorded before the chain: ties in time, a
	// pending operation's, an account's.
	users := []string{"alice", "Bob", "bob", "carol", "(command line)"}
	var legacy []any
	for i := range 40 {
		e := StudentAdded(Actor{Username: users[i%len(users)]}, Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("L-%02d", i), FirstName: "Old", SecondName: "Entry"})
		if i%3 == 0 {
			e = StudentChanged(Actor{Username: users[i%len(users)]}, Student{ID: int64(i + 1)}, Student{ID: int64(i + 1), FirstName: "X"})
		}
		if i%11 == 0 {
			e = UserAdded(Actor{Username: "alice"}, User{ID: fmt.Sprint("u", i), Username: "new"})
		}
		e.ID, e.At = bson.NewObjectID().Hex(), clock.t.Add(time.Duration(i/2)*time.Minute)
		if i == 7 {
			e.Op = 1 << 40 // pending
		}
		legacy = append(legacy, e)
	}
	if _, err := s.col(colHistory).InsertMany(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Hour)

	// The chain: single entries and batches, the clock standing still and
	// going back; an import, a bulk delete; an operation that is pending
	// and one rolled back.
	for i := range 60 {
		a := Actor{Username: users[(i*7)%len(users)]}
		var es []HistoryEntry
		for j := range 1 + i%4 {
			// Some of these students have legacy entries too.
			st := Student{ID: int64(1 + (i*3+j)%70), RegistrationNo: fmt.Sprintf("N-%02d-%d", i, j), FirstName: "New", SecondName: "Entry"}
			switch (i + j) % 5 {
			case 0:
				es = append(es, StudentAdded(a, st))
			case 1:
				es = append(es, StudentDeleted(a, st, true))
			case 2:
				es = append(es, ResetLinkIssued(a, User{ID: "u1", Username: "alice"}))
			case 3:
				es = append(es, GroupAdded(a, Group{ID: "g1", Name: "Clerks"}))
			default:
				es = append(es, StudentChanged(a, st, st))
			}
		}
		if err := s.RecordHistory(ctx, es...); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			clock.t = clock.t.Add(-time.Minute)
		case 1:
			clock.t = clock.t.Add(time.Second)
		}
	}
	if _, errs, err := s.ImportStudents(ctx, rowsOf("I", 30, "Imported"), nil); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	pg, err := s.ListStudents(ctx, ListOptions{PerPage: 10, Sort: "id"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, st := range pg.Students {
		ids = append(ids, st.ID)
	}
	if _, err := s.DeleteStudents(ctx, ids, Actor{Username: "carol"}); err != nil {
		t.Fatal(err)
	}
	crashAt(t, s.db, "commit", func(w *Store) { _, _, _ = w.ImportStudents(context.Background(), rowsOf("R", 12, "Rolled"), nil) })
	if n, err := s.RecoverOperations(ctx); err != nil || n != 1 {
		t.Fatalf("recovered %d operations (%v), want 1", n, err)
	}
	crashAt(t, s.db, "commit", func(w *Store) { _, _, _ = w.ImportStudents(context.Background(), rowsOf("P", 12, "Pending"), nil) })
	if err := s.recordEntries(ctx, 1<<41, StudentAdded(Actor{Username: "bob"}, Student{ID: 9999})); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHistory(ctx, StudentAdded(Actor{Username: "bob"}, Student{ID: 9998, RegistrationNo: "last"})); err != nil {
		t.Fatal(err)
	}

	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	filters := []HistoryFilter{
		{Accounts: true},
		{},
		{Username: "bob"},
		{Username: "BOB", Accounts: true},
		{Username: "(command line)"},
		{Username: "nobody"},
		{Action: ActionAdd},
		{Action: ActionBulkDelete, Accounts: true},
		{Action: ActionRolledBack},
		{Action: ActionImport},
		{From: clock.t.Add(-2 * time.Minute), Accounts: true},
		{Until: day.Add(8*time.Hour + 10*time.Minute), Accounts: true},
		{From: day.Add(8*time.Hour + 5*time.Minute), Until: clock.t.Add(-time.Minute), Username: "alice"},
	}
	for _, f := range filters {
		for _, per := range []int{7, 50} {
			for _, page := range []int{1, 2, 3, 9, 1 << 20} {
				want, err := old.FindHistory(ctx, f, page, per)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.FindHistory(ctx, f, page, per)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%+v page %d of %d", f, page, per)
				if !reflect.DeepEqual(got.Entries, want.Entries) {
					t.Fatalf("%s: chain gives\n%s\nthe sorted query\n%s", name, entryIDs(got.Entries), entryIDs(want.Entries))
				}
				if got.Page != want.Page || got.More != want.More || (got.Counted && (got.Total != want.Total || got.Pages != want.Pages)) {
					t.Fatalf("%s: chain page %d more %v total %d/%d (counted %v), sorted query page %d more %v total %d/%d",
						name, got.Page, got.More, got.Total, got.Pages, got.Counted, want.Page, want.More, want.Total, want.Pages)
				}
			}
		}
		for _, n := range []int{1, 10, 1000} {
			want, err := old.LatestHistory(ctx, f, n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.LatestHistory(ctx, f, n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("%+v latest %d: chain gives\n%s\nthe sorted query\n%s", f, n, entryIDs(got), entryIDs(want))
			}
		}
	}
	for id := range int64(200) {
		want, err := old.StudentHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.StudentHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("student %d: slots give\n%s\nthe sorted query\n%s", id, entryIDs(got), entryIDs(want))
		}
	}
	want, err := old.HistoryUsernames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.HistoryUsernames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("usernames from the chain %q, from the entries %q", got, want)
	}
}

func entryIDs(es []HistoryEntry) string {
	out := ""
	for _, e := range es {
		out += fmt.Sprintf("  %s %s %s %s op %d\n", e.At.Format(time.RFC3339Nano), e.ID, e.Username, e.Action, e.Op)
	}
	return out
}

// TestHistoryChainCrossTenant records entries with the same IDs, users
// and times in two schools: each school's pages, latest entries and names
// are its own.
func TestHistoryChainCrossTenant(t *testing.T) {
	ctx := t.Context()
	clock := &steppingClock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	a := newStore(t, Options{Now: clock.now, ReadModel: ReadModelOn})
	b := newStore(t, Options{Now: clock.now, ReadModel: ReadModelOn})
	for i := range 30 {
		for _, sc := range []struct {
			s    *Store
			name string
		}{{a, "A"}, {b, "B"}} {
			e := StudentAdded(Actor{Username: "clerk"}, Student{ID: int64(i), RegistrationNo: sc.name, FirstName: sc.name, SecondName: sc.name})
			e.ID = fmt.Sprintf("same-%02d", i)
			if sc.name == "B" && i%2 == 0 {
				e.Username = "b-only"
			}
			if err := sc.s.RecordHistory(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		clock.t = clock.t.Add(time.Second)
	}
	for _, sc := range []struct {
		s    *Store
		name string
		n    int
	}{{a, "A", 30}, {b, "B", 30}} {
		for page := 1; page <= 4; page++ {
			pg, err := sc.s.FindHistory(ctx, HistoryFilter{Accounts: true}, page, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range pg.Entries {
				if e.Object != sc.name+" "+sc.name+" ("+sc.name+")" {
					t.Fatalf("school %s page %d shows %q", sc.name, page, e.Object)
				}
			}
		}
		latest, err := sc.s.LatestHistory(ctx, HistoryFilter{Username: "clerk"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range latest {
			if e.Object != sc.name+" "+sc.name+" ("+sc.name+")" {
				t.Fatalf("school %s's latest shows %q", sc.name, e.Object)
			}
		}
	}
	if names, err := a.HistoryUsernames(ctx); err != nil || !slices.Equal(names, []string{"clerk"}) {
		t.Fatalf("school A's names %q (%v): B's b-only must not be there", names, err)
	}
	if got, err := a.LatestHistory(ctx, HistoryFilter{Username: "b-only"}, 10); err != nil || len(got) != 0 {
		t.Fatalf("school A shows %d of B's entries (%v)", len(got), err)
	}
}

// TestChainFollowsAReplacedChain: a Store that claimed batches follows its
// own last one without reading the hint; when the chain was replaced
// meanwhile (a restore of a shorter one), its next entries still go into
// the chain there is, readable.
func TestChainFollowsAReplacedChain(t *testing.T) {
	s := newStore(t, Options{})
	for i := range 6 {
		if err := s.RecordHistory(t.Context(), StudentsImported(Actor{Username: fmt.Sprintf("clerk%d", i)}, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{colHistoryChain, colHistory} {
		if err := s.db.Collection(c).Drop(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordHistory(t.Context(), StudentsImported(Actor{Username: "after"}, 1)); err != nil {
		t.Fatal(err)
	}
	es, err := s.LatestHistory(t.Context(), HistoryFilter{Accounts: true}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Username != "after" || es[0].Batch != 1 {
		t.Fatalf("after the chain was replaced: %+v, want one entry of batch 1", es)
	}
}
