package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero, from the proxy's side:
//
//  1. A request arrives for an active tenant whose route has no healthy
//     instance. ServeHTTP calls hold.
//  2. hold asks the Waker (if any) to start the tenant — at most once per
//     wakeInterval per tenant, in a goroutine, so the request never waits
//     on the Waker itself — and asks again every wakeInterval while it
//     waits.
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
	ts := rt.tenant
	ts.held.Add(1)
	p.scale.held.Inc()
	defer func() {
		ts.held.Add(-1)
		p.scale.held.Dec()
	}()
	timer := time.NewTimer(p.cfg.HoldTimeout)
	defer timer.Stop()
	// Wake again while waiting (rate-limited per tenant): a wake may be
	// lost (a supervisor restarting) or come too soon after the last one.
	again := time.NewTicker(wakeInterval)
	defer again.Stop()
	for {
		t := p.table.Load()
		rt = t.routes[host]
		if rt == nil || len(rt.pool) > 0 || rt.state != registry.StateActive {
			return rt
		}
		select {
		case <-t.replaced:
		case <-again.C:
			p.wake(ctx, rt.tenant)
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
		p.scale.wakes.Inc()
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

// --- Scale to zero (issue 12): what the supervisor and operators see ---

// Metric names of the proxy's side of scale to zero.
const (
	// MetricHeldRequests is a gauge: requests held now for a tenant with
	// no healthy instance.
	MetricHeldRequests = "campus_proxy_held_requests"
	// MetricWakesTotal counts Waker calls (at most about one per second
	// per tenant while requests are held).
	MetricWakesTotal = "campus_proxy_wakes_total"
)

type scaleMetrics struct {
	held  prometheus.Gauge
	wakes prometheus.Counter
}

func newScaleMetrics(reg prometheus.Registerer) (scaleMetrics, error) {
	m := scaleMetrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricHeldRequests,
			Help: "Requests held now, waiting for a tenant with no healthy instance to get one.",
		}),
		wakes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricWakesTotal,
			Help: "Calls of the Waker for tenants with no healthy instance.",
		}),
	}
	for _, c := range []prometheus.Collector{m.held, m.wakes} {
		if err := reg.Register(c); err != nil {
			return m, err
		}
	}
	return m, nil
}

// touch records that a request of the tenant ended at t.
func (ts *tenantState) touch(t time.Time) {
	n := t.UnixNano()
	if ts.lastDone.Load() < n {
		ts.lastDone.Store(n)
	}
}

// Activity reports the requests of tenant in flight through this proxy
// (held ones included; uploads and downloads until their last byte) and
// when the last one ended: the supervisor's idle-stop input
// (supervisor.Activity). An unknown tenant has none.
func (p *Proxy) Activity(tenant string) (inFlight int64, last time.Time) {
	p.mu.Lock()
	ts := p.tenants[tenant]
	p.mu.Unlock()
	if ts == nil {
		return 0, time.Time{}
	}
	// On an instance, whether or not the latest table still lists it.
	inFlight = ts.held.Load() + ts.active.Load()
	if n := ts.lastDone.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	return inFlight, last
}

// RoutesTo reports whether the proxy's latest routing table still lists
// instance id of tenant (healthy or not), i.e. whether a new request could
// still be sent to it. The supervisor's idle stop deregisters an instance,
// then waits for this to turn false before it stops the process, so that
// no request is dialled to a closed listener (supervisor.Router). Requests
// that picked the instance from an older table are in flight: the app
// drains them when it is stopped gracefully.
func (p *Proxy) RoutesTo(tenant, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.tenants[tenant]
	if ts == nil || ts.route == nil {
		return false
	}
	for _, in := range ts.route.instances {
		if in.id == id {
			return true
		}
	}
	return false
}

// Route statuses in /routes.
const (
	RouteRunning   = "running"   // a healthy instance serves it
	RouteStarting  = "starting"  // no healthy instance; requests are held (or it was woken within startingFor)
	RouteIdle      = "idle"      // no healthy instance, nobody waiting: scaled to zero
	RouteUnhealthy = "unhealthy" // instances registered, none healthy, nobody waiting
)

// startingFor is how long after a wake a tenant with no instance (and no
// request held any more) still shows as starting.
const startingFor = wakeInterval

// routeStatus is rt's scale-to-zero status; "" for a tenant not served
// (suspended).
func routeStatus(rt *route, now time.Time) string {
	switch {
	case rt.state != registry.StateActive:
		return ""
	case len(rt.pool) > 0:
		return RouteRunning
	case rt.tenant.held.Load() > 0 || now.Sub(time.Unix(0, rt.tenant.lastWake.Load())) < startingFor:
		return RouteStarting
	case len(rt.instances) > 0:
		return RouteUnhealthy
	default:
		return RouteIdle
	}
}

// RegistryWaker wakes tenants through the registry (Registry.RequestWake),
// for proxies whose supervisors run elsewhere: they watch the wake
// requests (supervisor.Config.WakeSource). Only the tenant's name travels:
// the supervisor trusts the registry's record of it, not the proxy.
type RegistryWaker struct {
	Registry interface {
		RequestWake(ctx context.Context, tenant string) error
	}
	Logger *slog.Logger // default slog.Default()
}

// Wake implements Waker.
func (w RegistryWaker) Wake(ctx context.Context, tenant string) {
	if err := w.Registry.RequestWake(ctx, tenant); err != nil {
		log := w.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("wake request through the registry failed", "tenant", tenant, "err", err)
	}
}

// Wakers calls every Waker in turn (for example the local supervisor and
// the registry).
type Wakers []Waker

// Wake implements Waker.
func (ws Wakers) Wake(ctx context.Context, tenant string) {
	for _, w := range ws {
		w.Wake(ctx, tenant)
	}
}
