package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// benchWakeup measures how long a Watch on watcher takes to return after a
// write through writer commits. Reported as ns/wake (mean) besides ns/op
// (which includes the write and a random pause).
func benchWakeup(b *testing.B, watcher, writer *Registry) {
	ctx := context.Background()
	snap, err := watcher.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		type woke struct {
			s   registry.Snapshot
			err error
			at  time.Time
		}
		ch := make(chan woke, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			s, err := watcher.Watch(ctx, snap.Version)
			ch <- woke{s, err, time.Now()}
		}()
		<-started
		// Write at a random point of the poll cycle, or the loop locks
		// onto the ticker and always waits a whole interval.
		time.Sleep(time.Duration(rand.Int64N(int64(watcher.poll))))
		in := registry.Instance{ID: "bench", Tenant: "bench", Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i%2)}
		if err := writer.RegisterInstance(ctx, in); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		w := <-ch
		if w.err != nil {
			b.Fatal(w.err)
		}
		if w.at.After(committed) {
			total += w.at.Sub(committed)
		}
		snap = w.s
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/wake")
}

// BenchmarkWatchWakeupAcrossHandles: two Opens of one directory, as two
// processes would have; the wake-up goes through the poller.
func BenchmarkWatchWakeupAcrossHandles(b *testing.B) {
	dir := b.TempDir()
	benchWakeup(b, open(b, dir), open(b, dir))
}

// BenchmarkWatchWakeupSameHandle: the write and the watch share a handle;
// the wake-up is a channel close after the commit.
func BenchmarkWatchWakeupSameHandle(b *testing.B) {
	r := open(b, b.TempDir())
	benchWakeup(b, r, r)
}

// BenchmarkPollIdle is the cost of one poll while nothing changes: what a
// watching process pays every poll interval.
func BenchmarkPollIdle(b *testing.B) {
	r := open(b, b.TempDir())
	ctx := context.Background()
	p, err := r.newPoller(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	for b.Loop() {
		if err := p.check(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotCached is a Snapshot while nothing changed (one read
// transaction reading the version).
func BenchmarkSnapshotCached(b *testing.B) {
	r := open(b, b.TempDir())
	ctx := context.Background()
	for i := range 50 {
		tn, _ := registry.NewTenant(fmt.Sprintf("t%d", i), []string{fmt.Sprintf("t%d.school.localhost", i)}, "")
		if _, err := r.CreateTenant(ctx, tn); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := r.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
