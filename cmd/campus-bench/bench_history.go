package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/store"
)

// runBenchHistory times the history reads of a school with --entries
// entries on an embedded FerretDB: the admin home's latest actions, the
// history page (everything, a user's own, an action), a student's
// history and the "who" names. It uses only the store's exported API, so
// the same file builds on an older tree for a before/after comparison.
func runBenchHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlags("history", "", `Time the history reads of one school with --entries entries on an embedded FerretDB
(store API, no HTTP): --samples reads of each kind after the seeding, p50/p99/max and the load.`)
	entries := fs.Int("entries", 100_000, "history entries to record (90% in batches of 500, 10% one at a time)")
	samples := fs.Int("samples", 20, "reads of each kind")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "campus-bench-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := devmongo.Start(ctx, devmongo.Config{Dir: filepath.Join(dir, "mongo"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("start embedded database: %w", err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	s := store.New(client.Database("history_bench"), store.Options{BcryptCost: bcrypt.MinCost, QueryTimeout: 30 * time.Minute})
	if _, _, err := s.Migrate(ctx); err != nil {
		return err
	}

	start := time.Now()
	singles := *entries / 10
	var batch []store.HistoryEntry
	for i := 0; i < *entries-singles; i++ {
		st := store.Student{ID: int64(i + 1), RegistrationNo: benchRegNo(i), FirstName: "Amina", SecondName: "Otieno"}
		batch = append(batch, store.StudentDeleted(store.Actor{Username: fmt.Sprintf("clerk%d", i/500%20)}, st, true))
		if len(batch) == 500 {
			if err := s.RecordHistory(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
		// The single edits, spread over time among the bulk ones; the
		// rare user's five, early.
		if i%9 == 8 || i == *entries-singles-1 {
			for k := 0; k < 1+(i/9)%2 && singles > 0; k++ {
				who := fmt.Sprintf("clerk%d", singles%20)
				if singles%(*entries/50) == 0 {
					who = "rare"
				}
				st := store.Student{ID: int64(singles), RegistrationNo: benchRegNo(singles), FirstName: "Zoe", SecondName: "Kamau"}
				if err := s.RecordHistory(ctx, store.StudentChanged(store.Actor{Username: who}, st, st)); err != nil {
					return err
				}
				singles--
			}
		}
	}
	if len(batch) > 0 {
		if err := s.RecordHistory(ctx, batch...); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "recorded %d history entries in %s (load %s)\n", *entries, time.Since(start).Round(time.Millisecond), loadavg())

	kinds := []struct {
		name string
		read func() (int, error)
	}{
		{"home, superuser: latest 10", func() (int, error) {
			es, err := s.LatestHistory(ctx, store.HistoryFilter{Accounts: true}, 10)
			return len(es), err
		}},
		{"home, clerk7: my latest 10", func() (int, error) {
			es, err := s.LatestHistory(ctx, store.HistoryFilter{Username: "clerk7"}, 10)
			return len(es), err
		}},
		{"page 1, everything", func() (int, error) {
			pg, err := s.FindHistory(ctx, store.HistoryFilter{Accounts: true}, 1, 50)
			return len(pg.Entries), err
		}},
		{"page 2, everything", func() (int, error) {
			pg, err := s.FindHistory(ctx, store.HistoryFilter{Accounts: true}, 2, 50)
			return len(pg.Entries), err
		}},
		{"who names (superuser's page)", func() (int, error) {
			names, err := s.HistoryUsernames(ctx)
			return len(names), err
		}},
		{"page 1, clerk7's own", func() (int, error) {
			pg, err := s.FindHistory(ctx, store.HistoryFilter{Username: "clerk7"}, 1, 50)
			return len(pg.Entries), err
		}},
		{"page 1, action=change", func() (int, error) {
			pg, err := s.FindHistory(ctx, store.HistoryFilter{Action: store.ActionChange, Accounts: true}, 1, 50)
			return len(pg.Entries), err
		}},
		{"page 1, rare user (5 entries)", func() (int, error) {
			pg, err := s.FindHistory(ctx, store.HistoryFilter{Username: "rare"}, 1, 50)
			return len(pg.Entries), err
		}},
		{"a student's history", func() (int, error) {
			es, err := s.StudentHistory(ctx, 7)
			return len(es), err
		}},
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "read (%d entries, warm)\tn\tentries\tp50\tp99\tmax\tload after\t\n", *entries)
	for _, k := range kinds {
		var ds []time.Duration
		got := 0
		for range *samples {
			t0 := time.Now()
			n, err := k.read()
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			ds = append(ds, time.Since(t0))
			got = n
		}
		slices.Sort(ds)
		q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", k.name, len(ds), got, q(0.5).Round(time.Microsecond*100), q(0.99).Round(time.Microsecond*100), ds[len(ds)-1].Round(time.Microsecond*100), loadavg())
	}
	return w.Flush()
}
