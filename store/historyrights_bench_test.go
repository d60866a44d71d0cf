package store

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
)

// BenchmarkHistoryPage measures the history page's reads at 1,000,
// 10,000 and 100,000 entries (the size a big school's imports reach once
// each imported student has its entry; set CAMPUS_BENCH_HISTORY to the
// sizes, default "1000,10000"), on the test database server (FerretDB
// unless MONGODB_URI is set), and a session look-up per kind of user (the
// permissions are read with it: nothing more for a superuser or the
// built-in groups, one read of the school's groups otherwise):
//
//	go test ./store -run '^$' -bench HistoryPage -benchtime 3x -timeout 60m
func BenchmarkHistoryPage(b *testing.B) {
	ctx := b.Context()
	s := New(mongotest.Database(b), Options{BcryptCost: bcrypt.MinCost, QueryTimeout: 10 * time.Minute})
	if _, _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	sizes := os.Getenv("CAMPUS_BENCH_HISTORY")
	if sizes == "" {
		sizes = "1000,10000"
	}
	have := 0
	for _, size := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(size))
		if err != nil || n < have {
			b.Fatalf("CAMPUS_BENCH_HISTORY=%q: want growing sizes", sizes)
		}
		recordBenchHistory(b, s, have, n)
		have = n
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) { benchHistoryReads(b, s, n) })
	}
	benchSessions(b, s)
}

// recordBenchHistory adds the entries from to n (20 clerks adding
// students).
func recordBenchHistory(b *testing.B, s *Store, from, n int) {
	ctx := b.Context()
	start := time.Now()
	batch := make([]HistoryEntry, 0, historyBatch)
	for i := from; i < n; i++ {
		who := Actor{Username: fmt.Sprintf("clerk%d", i%20)}
		st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i), FirstName: "Amina", SecondName: "Otieno"}
		batch = append(batch, StudentAdded(who, st))
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.RecordHistory(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("recorded history entries %d to %d in %s", from, n, time.Since(start))
}

func benchHistoryReads(b *testing.B, s *Store, n int) {
	ctx := b.Context()

	for _, tc := range []struct {
		name string
		f    HistoryFilter
		page int
	}{
		{"all,page=1", HistoryFilter{Accounts: true}, 1},
		{"all,last page", HistoryFilter{Accounts: true}, (n + 49) / 50},
		{"all,past the end", HistoryFilter{Accounts: true}, 1 << 30},
		{"user=clerk7,page=1", HistoryFilter{Username: "clerk7"}, 1},
		{"action=change (none),page=1", HistoryFilter{Action: ActionChange}, 1},
	} {
		b.Run("FindHistory/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.FindHistory(ctx, tc.f, tc.page, 50); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("HistoryUsernames", func(b *testing.B) {
		for b.Loop() {
			if names, err := s.HistoryUsernames(ctx); err != nil || len(names) == 0 {
				b.Fatal(names, err)
			}
		}
	})
	b.Run("LatestHistory/home,mine", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.LatestHistory(ctx, HistoryFilter{Username: "clerk7"}, 10); err != nil {
				b.Fatal(err)
			}
		}
	})

}

func benchSessions(b *testing.B, s *Store) {
	ctx := b.Context()
	g, err := s.CreateGroup(ctx, "Office", []Permission{PermView})
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []NewUser{
		{Username: "head", Password: "quiet-lantern-64", IsSuperuser: true},
		{Username: "staffer", Password: "quiet-lantern-64"},
		{Username: "office", Password: "quiet-lantern-64", Groups: []string{g.ID}},
	} {
		user, err := s.CreateUser(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		token, _, err := s.CreateSession(ctx, user)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Session/"+u.Username, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Session(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
