package supervisor

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero (issue 12), from the supervisor's side:
//
//   - Idle stop: a ready child whose tenant has had no request in flight
//     and none finished for its idle timeout (Config.IdleTimeout or the
//     tenant's own, registry.Tenant.IdleAfter) is deregistered, given a
//     moment for proxies to notice, checked once more, and stopped
//     gracefully (the app drains what is in flight). The child slot then
//     waits in StateIdle for a Wake; no process runs.
//   - Wake: Supervisor.Wake (the proxy's Waker in campus dev) or a wake
//     request from Config.WakeSource (proxies elsewhere, through the
//     registry) starts an idle child. Only children of tenants the
//     registry says are active exist, so a wake for a suspended, deleted
//     or unknown tenant starts nothing, and a wake for A touches only A's
//     slot.
//   - Start cap: at most Config.MaxStarts children start at once; woken
//     ones (requests waiting) take a free slot before the others.
//   - Liveness: Config.LivenessFailures unanswered health checks in a row
//     and a ready child is killed (SIGKILL: a stopped or deadlocked process
//     would not act on SIGTERM) and started again.

// Defaults of the scale-to-zero fields of Config.
const (
	DefaultLivenessFailures = 3
	// idleDrain is how long an idle child stays up after it was
	// deregistered, so that proxies stop routing to it before it stops
	// listening; a request in that time keeps it.
	idleDrain = 250 * time.Millisecond
	// pendingWakeTTL is how long a wake for a tenant the supervisor has
	// not seen yet is remembered; maxPending bounds how many are.
	pendingWakeTTL = 10 * time.Second
	maxPending     = 1024
	// urgentFor is how long after a wake a start counts as urgent.
	urgentFor = time.Minute
)

// DefaultMaxStarts is the default start cap: two per CPU, at least 4.
var DefaultMaxStarts = max(4, 2*runtime.NumCPU())

// DefaultMaxChecks is the default cap of concurrent health checks of ready
// children: two per CPU, at least 4.
var DefaultMaxChecks = max(4, 2*runtime.NumCPU())

// Activity reports whether a tenant is in use. The proxy implements it
// (campus dev runs both in one process): requests in flight to the
// tenant's instances (uploads and long downloads included, until their
// last byte), and when the last one finished.
type Activity interface {
	Activity(tenant string) (inFlight int64, last time.Time)
}

// Router is an Activity that can also tell whether its proxy still routes
// new requests to an instance (the proxy implements it). With one, the
// idle stop waits, after deregistering, until the proxy has dropped the
// instance before it stops the process; without one it only waits
// idleDrain.
type Router interface {
	RoutesTo(tenant, instanceID string) bool
}

// unrouteTimeout bounds the idle stop's wait for the proxy to drop the
// instance; after it, the child is kept (and registered again) rather than
// stopped under a proxy that may still send it requests.
const unrouteTimeout = 30 * time.Second

// unroutePoll is the period of that wait's RoutesTo calls.
const unroutePoll = 5 * time.Millisecond

// awaitUnrouted waits until the Activity (a Router) no longer routes to
// instance id; it reports false if that did not happen within
// unrouteTimeout or c.ctx ended.
func (c *child) awaitUnrouted(id string) bool {
	r, ok := c.s.cfg.Activity.(Router)
	if !ok {
		return true
	}
	deadline := time.Now().Add(unrouteTimeout)
	for r.RoutesTo(c.tenant.Name, id) {
		if time.Now().After(deadline) {
			c.log.Warn("proxy still routes to the deregistered instance; keeping the child", "instance", id, "waited", unrouteTimeout)
			return false
		}
		if !sleep(c.ctx, unroutePoll) {
			return false
		}
	}
	return true
}

// WakeSource delivers wake requests; registry.Registry implements it.
type WakeSource interface {
	WatchWakes(ctx context.Context, after uint64) ([]registry.Wake, uint64, error)
}

// watchWakes passes the wakes of the WakeSource newer than cursor to Wake
// until ctx ends.
func (s *Supervisor) watchWakes(ctx context.Context, cursor uint64) {
	failures := 0
	for {
		wakes, next, err := s.cfg.WakeSource.WatchWakes(ctx, cursor)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			d := backoff(failures, time.Second, 30*time.Second)
			s.log.Warn("watch wake requests failed; retrying", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		failures = 0
		for _, w := range wakes {
			s.log.Debug("wake request from the registry", "tenant", w.Tenant)
			s.Wake(ctx, w.Tenant)
		}
		cursor = next
	}
}

// rememberWakeLocked keeps a wake for a tenant not seen yet. s.mu is held.
func (s *Supervisor) rememberWakeLocked(tenant string, now time.Time) {
	for name, at := range s.pending {
		if now.Sub(at) > pendingWakeTTL {
			delete(s.pending, name)
		}
	}
	if len(s.pending) < maxPending {
		s.pending[tenant] = now
	}
}

// wakeUp records a wake at and lets the child's run loop see it (ending
// an idle wait or a backoff).
func (c *child) wakeUp(at time.Time) {
	c.lastWake.Store(at.UnixNano())
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wokenSince reports whether a wake arrived at or after t.
func (c *child) wokenSince(t time.Time) bool { return c.lastWake.Load() >= t.UnixNano() }

// urgent reports whether someone is waiting for this child to start.
func (c *child) urgent() bool {
	w := c.lastWake.Load()
	return w != 0 && time.Since(time.Unix(0, w)) < urgentFor
}

// startsIdle reports whether the child waits for a wake before its first
// start.
func (c *child) startsIdle() bool { return c.s.cfg.StartIdle && c.mayIdle() }

// mayIdle reports whether the tenant is ever stopped for being idle.
func (c *child) mayIdle() bool { return c.idleAfter.Load() > 0 && c.s.cfg.Activity != nil }

// waitIdle parks the child, with no process, until a wake at or after
// since (a wake during the idle stop counts) or the end of c.ctx; it
// reports whether to start.
func (c *child) waitIdle(since time.Time) bool {
	select { // a signal already consumed by lastWake below
	case <-c.wake:
	default:
	}
	if c.wokenSince(since) {
		return true
	}
	c.update(func(st *ChildStatus) { st.State, st.PID, st.InstanceID = StateIdle, 0, "" })
	select {
	case <-c.ctx.Done():
		return false
	case <-c.wake:
		return true
	}
}

// idleFor returns how long the tenant has been unused, or 0 if it is in
// use or never idles. readyAt is when the current process became ready.
func (c *child) idleFor(readyAt time.Time) time.Duration {
	if !c.mayIdle() {
		return 0
	}
	inFlight, last := c.s.cfg.Activity.Activity(c.tenant.Name)
	if inFlight > 0 || c.busy() {
		return 0
	}
	if b := c.lastBusy(); b.After(last) { // busy counts as use (busy.go)
		last = b
	}
	if w := time.Unix(0, c.lastWake.Load()); w.After(last) {
		last = w
	}
	if readyAt.After(last) {
		last = readyAt
	}
	d := time.Since(last)
	if d < time.Duration(c.idleAfter.Load()) {
		return 0
	}
	return d
}

// gate caps concurrent starts; woken children go first.
type gate struct {
	mu      sync.Mutex
	free    int
	waiters []*gateWaiter // FIFO; urgent ones are served first
}

type gateWaiter struct {
	c       *child
	urgent  bool
	granted chan struct{}
}

func newGate(n int) *gate { return &gate{free: n} }

// acquire waits for a start slot; it returns a release func, or false
// when ctx ended first.
func (g *gate) acquire(ctx context.Context, c *child) (func(), bool) {
	g.mu.Lock()
	if g.free > 0 && len(g.waiters) == 0 {
		g.free--
		g.mu.Unlock()
		return g.releaser(), true
	}
	w := &gateWaiter{c: c, urgent: c.urgent(), granted: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	c.s.met.startsWaiting.Inc()
	g.mu.Unlock()
	defer c.s.met.startsWaiting.Dec()
	select {
	case <-w.granted:
		return g.releaser(), true
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		for i, x := range g.waiters {
			if x == w {
				g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
				return nil, false
			}
		}
		// Granted meanwhile: pass the slot on.
		g.releaseLocked()
		return nil, false
	}
}

func (g *gate) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.releaseLocked()
		})
	}
}

// releaseLocked hands a slot to the first urgent waiter, else the first.
func (g *gate) releaseLocked() {
	if len(g.waiters) == 0 {
		g.free++
		return
	}
	pick := 0
	for i, w := range g.waiters {
		if w.urgent {
			pick = i
			break
		}
	}
	w := g.waiters[pick]
	g.waiters = append(g.waiters[:pick], g.waiters[pick+1:]...)
	close(w.granted)
}

// promote marks c's waiting start, if any, as urgent.
func (g *gate) promote(c *child) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.waiters {
		if w.c == c {
			w.urgent = true
		}
	}
}
