package proxy

import (
	"context"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero, from the proxy's side:
//
//  1. A request arrives for an active tenant whose route has no healthy
//     instance. ServeHTTP calls hold.
//  2. hold asks the Waker (if any) to start the tenant — at most once per
//     wakeInterval per tenant, in a goroutine, so the request never waits
//     on the Waker itself.
//  3. hold waits until a newer routing table is published (every table has
//     a channel that Update closes when it replaces the table), then looks
//     the host up again. It returns as soon as the route has an instance,
//     or the route changed so that waiting is pointless (tenant suspended
//     or deleted), or HoldTimeout passes, or the client goes away.
//  4. Meanwhile the Waker's side (the supervisor) starts the app and
//     registers it; the registry watch delivers a snapshot to Update, which
//     publishes a table with the instance and wakes every held request.

// wakeInterval rate-limits Waker calls per tenant.
const wakeInterval = time.Second

// wakeTimeout bounds one Waker call.
const wakeTimeout = time.Minute

// hold waits for host's tenant to get a healthy instance and returns the
// latest route for host (nil if the host left the table). The caller checks
// the returned route again: it may still have no instance.
func (p *Proxy) hold(ctx context.Context, host string, rt *route) *route {
	p.wake(ctx, rt.tenant)
	if p.cfg.HoldTimeout < 0 {
		return rt
	}
	timer := time.NewTimer(p.cfg.HoldTimeout)
	defer timer.Stop()
	for {
		t := p.table.Load()
		rt = t.routes[host]
		if rt == nil || len(rt.pool) > 0 || rt.state != registry.StateActive {
			return rt
		}
		select {
		case <-t.replaced:
		case <-timer.C:
			return rt
		case <-ctx.Done():
			return rt
		}
	}
}

// wake calls the Waker for tenant unless it was called within the last
// wakeInterval. It never blocks.
func (p *Proxy) wake(ctx context.Context, ts *tenantState) {
	if p.cfg.Waker == nil {
		return
	}
	now := time.Now().UnixNano()
	last := ts.lastWake.Load()
	if now-last < int64(wakeInterval) || !ts.lastWake.CompareAndSwap(last, now) {
		return // called recently, or another request is calling it right now
	}
	// The request may end before the Waker does: keep its values (logging),
	// drop its cancellation.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wakeTimeout)
	go func() {
		defer cancel()
		defer func() {
			if v := recover(); v != nil {
				p.log.Error("waker panicked", "tenant", ts.name, "panic", v)
			}
		}()
		p.log.Info("waking tenant with no healthy instance", "tenant", ts.name)
		p.cfg.Waker.Wake(wctx, ts.name)
	}()
}

// awaitFirstTable waits, up to HoldTimeout, for the first table built from
// the registry and returns the current table (still the empty one when
// nothing arrived in time).
func (p *Proxy) awaitFirstTable(ctx context.Context) *table {
	t := p.table.Load()
	if t.seq > 0 || p.cfg.HoldTimeout < 0 {
		return t
	}
	timer := time.NewTimer(p.cfg.HoldTimeout)
	defer timer.Stop()
	select {
	case <-t.replaced:
	case <-timer.C:
	case <-ctx.Done():
	}
	return p.table.Load()
}
