package proxy

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Backoff between failed registry watches.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 10 * time.Second
)

// Run keeps the routing table in step with reg: a loop over Watch, each new
// snapshot handed to Update. On a watch error it keeps serving the last
// table, logs, and retries after a capped, jittered backoff. It returns nil
// when ctx ends.
func (p *Proxy) Run(ctx context.Context, reg registry.Registry) error {
	var after uint64
	backoff := watchBackoffMin
	for {
		snap, err := reg.Watch(ctx, after)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			msg := err.Error()
			p.watchErr.Store(&msg)
			p.log.Warn("registry watch failed; keeping the last routing table",
				"after_version", after, "retry_in", backoff, "err", err)
			if !sleep(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(backoff*2, watchBackoffMax)
			continue
		}
		p.watchErr.Store(nil)
		backoff = watchBackoffMin
		progressed := snap.Version > after || after == 0 && p.table.Load().seq == 0
		p.Update(snap)
		if !progressed {
			// Watch is meant to block until the version grows; if a backend
			// answers at once with nothing new, don't spin on it.
			if !sleep(ctx, jitter(watchBackoffMin)) {
				return nil
			}
		}
		after = snap.Version
	}
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
