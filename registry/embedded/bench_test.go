package embedded

import (
	"context"
	"database/sql"
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

// fill adds n tenants with one host and one instance each, in one
// transaction (through the API, 10,000 tenants take minutes of fsyncs).
func fill(b *testing.B, r *Registry, n int) {
	b.Helper()
	ctx := context.Background()
	err := r.write(ctx, func(tx *sql.Tx) (bool, error) {
		for i := range n {
			name := fmt.Sprintf("school%05d", i)
			if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (name, display_name, primary_host, db_name, state, created_at) VALUES (?, ?, ?, ?, 'active', ?)`,
				name, "School "+name, name+".school.localhost", name, time.Now().UnixNano()); err != nil {
				return false, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO hosts (host, tenant, pos) VALUES (?, ?, 0)`, name+".school.localhost", name); err != nil {
				return false, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO instances (id, tenant, addr, healthy) VALUES (?, ?, ?, 1)`,
				name+"-1", name, fmt.Sprintf("127.0.0.1:%d", 20000+i)); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSnapshotAfterChange is what a watching proxy pays per registry
// change with 10,000 tenants: another handle flips one instance's health,
// then this handle reads the new snapshot. Only the read is timed.
func BenchmarkSnapshotAfterChange(b *testing.B) {
	dir := b.TempDir()
	r, w := open(b, dir), open(b, dir)
	fill(b, w, 10000)
	ctx := context.Background()
	if _, err := r.Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		in := registry.Instance{ID: fmt.Sprintf("school%05d-1", i%10000), Tenant: fmt.Sprintf("school%05d", i%10000),
			Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i%10000), Healthy: i%20000 >= 10000}
		if err := w.RegisterInstance(ctx, in); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := r.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Tenants) != 10000 || len(s.Instances) != 10000 {
			b.Fatalf("snapshot has %d tenants, %d instances", len(s.Tenants), len(s.Instances))
		}
	}
}
