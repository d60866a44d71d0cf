package store

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
)

// BenchmarkRecordHistory measures recording history entries through the
// chain (historychain.go), one at a time (a single edit) and 500 at a time
// (a bulk delete's entries), on the test database server:
//
//	go test ./store -run '^$' -bench RecordHistory -benchtime 2000x -cpuprofile /tmp/h.prof
//
// It reports the wall time and the process's CPU time (the embedded
// database's included) per entry.
func BenchmarkRecordHistory(b *testing.B) {
	for _, per := range []int{1, 500} {
		b.Run(fmt.Sprintf("per=%d", per), func(b *testing.B) {
			ctx := b.Context()
			s := New(mongotest.Database(b), Options{BcryptCost: bcrypt.MinCost, QueryTimeout: 10 * time.Minute})
			if _, _, err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			entries := make([]HistoryEntry, per)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				for j := range entries {
					n := i*per + j
					st := Student{ID: int64(n + 1), RegistrationNo: fmt.Sprintf("R-%07d", n), FirstName: "Amina", SecondName: "Otieno"}
					entries[j] = StudentDeleted(Actor{Username: fmt.Sprintf("clerk%d", n%20)}, st, true)
				}
				if err := s.RecordHistory(ctx, entries...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*per), "µs/entry")
			// The process's CPU time (the embedded database's included):
			// what the machine's load does not change much.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*per), "cpu-µs/entry")
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
