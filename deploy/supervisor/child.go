package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

const (
	// The /readyz polls of a starting child come fastPoll after the
	// start, then each an eighth later than the last (never more than
	// readyPoll apart): an app ready in tens of milliseconds is seen
	// within a few, and one that takes 300 ms on a loaded machine costs
	// 22 polls rather than 100 (each a new connection: a start storm's
	// polls were a tenth of the supervisor's CPU, docs/BENCHMARKS.md
	// "Where a start's CPU goes"). Seeing the ready app late by up to an
	// eighth of its start is the price.
	readyPoll = 50 * time.Millisecond
	fastPoll  = 3 * time.Millisecond
	// registryTimeout bounds each registry write of a child.
	registryTimeout = 5 * time.Second
	// waitDelay bounds how long Wait waits for a dead child's output
	// pipes (held open by any grandchildren) before closing them.
	waitDelay = 2 * time.Second
)

// child is one tenant's process slot. Its run goroutine owns the process
// and all fields below mu; the Supervisor only cancels it, wakes it and
// reads its status.
type child struct {
	s         *Supervisor
	tenant    registry.Tenant
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	prev      []<-chan struct{} // older children of the tenant, still stopping
	done      chan struct{}     // closed once run has returned and the child is retired
	wake      chan struct{}     // buffered(1): a wake (see lastWake) for the run loop
	restarts  prometheus.Counter
	killed    prometheus.Counter // memory kills (budget.go)
	lastWake  atomic.Int64       // unix nanoseconds of the last Wake; 0: none
	idleAfter atomic.Int64       // the tenant's idle timeout (time.Duration); 0: never
	memKills  atomic.Int64       // processes killed by the memory limit (budget.go)
	readyAt   atomic.Int64       // unix nanoseconds the current process became ready; 0: none
	evict     chan struct{}      // buffered(1): stop for the running cap (running.go)
	evicting  atomic.Bool        // an eviction was asked and not yet settled
	// Busy (busy.go): unix nanoseconds since the app has said it runs
	// imports or deletes (0: it does not), when it last said so, and
	// whether the busy limit's warning was logged.
	busySince, busySeen atomic.Int64
	busyWarned          atomic.Bool

	mu sync.Mutex
	st ChildStatus
}

func (s *Supervisor) newChild(ctx context.Context, t registry.Tenant, prev []<-chan struct{}) *child {
	cctx, cancel := context.WithCancel(ctx)
	s.met.tenants.WithLabelValues(string(StateStarting)).Inc()
	c := &child{
		s:        s,
		tenant:   t,
		log:      s.log.With("tenant", t.Name),
		ctx:      cctx,
		cancel:   cancel,
		prev:     prev,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		evict:    make(chan struct{}, 1),
		restarts: s.met.restarts.WithLabelValues(t.Name),
		killed:   s.met.memoryKills.WithLabelValues(t.Name),
		st:       ChildStatus{Tenant: t.Name, State: StateStarting, Since: time.Now()},
	}
	c.idleAfter.Store(int64(t.IdleAfter(s.cfg.IdleTimeout)))
	return c
}

func (c *child) status() ChildStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *child) update(f func(st *ChildStatus)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.st.State
	f(&c.st)
	if c.st.State != old {
		c.st.Since = time.Now()
		c.s.met.tenants.WithLabelValues(string(old)).Dec()
		if c.st.State != StateStopped {
			c.s.met.tenants.WithLabelValues(string(c.st.State)).Inc()
		}
	}
}

func (c *child) setState(s ChildState) { c.update(func(st *ChildStatus) { st.State = s }) }

// run keeps one process of the tenant alive until c.ctx ends.
func (c *child) run() {
	defer c.cancel()
	defer c.update(func(st *ChildStatus) {
		st.State, st.PID, st.InstanceID = StateStopped, 0, ""
	})
	for _, p := range c.prev {
		select {
		case <-p:
		case <-c.ctx.Done():
			return
		}
	}
	cold := false // this start answers a wake of an idle tenant
	if c.startsIdle() {
		if !c.waitIdle(time.Now().Add(-pendingWakeTTL)) {
			return
		}
		cold = true
	}
	failures := 0
	for {
		served, idleSince := c.runOnce(cold)
		if c.ctx.Err() != nil {
			return
		}
		if !idleSince.IsZero() {
			failures, cold = 0, true
			if !c.waitIdle(idleSince) {
				return
			}
			continue
		}
		cold = false
		if served >= c.s.cfg.StableAfter {
			failures = 0
		}
		failures++
		if !c.waitBackoff(backoff(failures, c.s.cfg.BackoffMin, c.s.cfg.BackoffMax)) {
			return
		}
		c.update(func(st *ChildStatus) { st.Restarts++ })
		c.restarts.Inc()
	}
}

// waitBackoff waits for d, a Wake or the end of c.ctx; it reports
// whether to start again.
func (c *child) waitBackoff(d time.Duration) bool {
	select { // drop a Wake that arrived while the child was not waiting
	case <-c.wake:
	default:
	}
	c.update(func(st *ChildStatus) { st.State, st.PID, st.InstanceID = StateBackoff, 0, "" })
	c.log.Info("child restarting after backoff", "backoff", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	case <-c.wake:
		c.log.Info("child woken; restarting now")
		return true
	}
}

// runOnce starts one process and supervises it until it is gone. It
// returns how long the process served after becoming ready (0 if it never
// did) and, when it was stopped for being idle, when that stop began.
// cold says the start answers a wake of an idle tenant (for the metrics).
func (c *child) runOnce(cold bool) (time.Duration, time.Time) {
	cfg := &c.s.cfg
	select { // an eviction asked of the last process
	case <-c.evict:
	default:
	}
	c.evicting.Store(false)
	release, ok := c.s.gate.acquire(c.ctx, c)
	if !ok {
		return 0, time.Time{}
	}
	defer release()
	// Room under the running cap is taken once a start slot is: a start
	// queued behind the start cap evicts nobody yet.
	switch c.admit() {
	case cancelled:
		return 0, time.Time{}
	case parked:
		return 0, time.Now()
	}
	defer c.s.room.leave()
	wokenAt := time.Unix(0, c.lastWake.Load())
	addr, err := freeAddr(cfg.Host)
	if err != nil {
		c.log.Error("pick a port for child failed", "err", err)
		return 0, time.Time{}
	}
	_, port, _ := net.SplitHostPort(addr)
	id := cfg.InstanceIDPrefix + c.tenant.Name + "-" + port

	c.update(func(st *ChildStatus) { st.State, st.Addr, st.PID, st.InstanceID = StateStarting, addr, 0, "" })
	started := time.Now()
	p, pooled, err := c.s.launch(c.tenant, addr, c.tenant.Name+"-"+port)
	if err != nil {
		c.log.Error("start child failed", "err", err)
		c.update(func(st *ChildStatus) { st.LastExit = "start failed: " + err.Error() })
		return 0, time.Time{}
	}
	cmd, exited := p.cmd, p.exited
	defer func() {
		if p.cg != nil {
			<-exited
			p.cg.remove()
		}
	}()
	pid := cmd.Process.Pid
	c.update(func(st *ChildStatus) { st.PID, st.InstanceID = pid, id })
	c.log.Info("child started", "pid", pid, "addr", addr, "instance", id, "pooled", pooled)

	exitedNow := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}

	// Starting: poll /readyz until 200, exit, timeout or stop.
	deadline := time.NewTimer(cfg.ReadyTimeout)
	defer deadline.Stop()
	wait := fastPoll
	poll := time.NewTimer(wait)
	defer poll.Stop()
	for {
		// The exit check after a good answer guards against another
		// process that took the port our child failed to bind.
		if c.s.checker.ready(c.ctx, addr, c.tenant.PrimaryHost) && !exitedNow() {
			break
		}
		select {
		case <-c.ctx.Done():
			c.stop(cmd, exited)
			return 0, time.Time{}
		case <-exited:
			c.logExit("child exited before ready", cmd, started)
			c.exited(p)
			return 0, time.Time{}
		case <-deadline.C:
			c.log.Warn("child not ready in time; stopping it", "pid", pid, "ready_timeout", cfg.ReadyTimeout)
			c.stop(cmd, exited)
			return 0, time.Time{}
		case <-poll.C:
			wait = min(wait+wait/8, readyPoll)
			poll.Reset(wait)
		}
	}
	readyAt := time.Now()
	c.readyAt.Store(readyAt.UnixNano())
	took := readyAt.Sub(started)
	c.s.met.startSeconds.Observe(took.Seconds())
	c.setState(StateReady)
	// Registered before the start slot is given up, so that a capped
	// stampede serves the first tenants first.
	healthy := true
	registered := c.register(id, addr, healthy)
	release()
	if cold {
		c.s.met.coldStarts.Inc()
		c.s.met.wakeSeconds.Observe(time.Since(wokenAt).Seconds())
	}
	c.log.Info("child ready", "pid", pid, "addr", addr, "took", took, "cold", cold)

	// Ready: a cheap liveness check every HealthInterval, a readiness
	// check every ReadinessInterval (see check.go); keep the registry in
	// line with readiness; stop when idle, replace when hung.
	tick := time.NewTimer(firstIn(cfg.HealthInterval))
	defer tick.Stop()
	nextReadiness := readyAt.Add(jitter(cfg.ReadinessInterval))
	unanswered := 0
	for {
		select {
		case <-c.ctx.Done():
			c.deregister(id)
			c.stop(cmd, exited)
			return time.Since(readyAt), time.Time{}
		case <-exited:
			c.deregister(id)
			c.logExit("child exited", cmd, started)
			c.exited(p)
			return time.Since(readyAt), time.Time{}
		case <-c.evict:
			if c.busyNow(addr) {
				c.evicting.Store(false)
				break
			}
			began := time.Now()
			if c.stopIdle(id, cmd, exited, 0, started) {
				return time.Since(readyAt), began
			}
			c.evicting.Store(false)
			registered = false // re-registered below
		case <-tick.C:
			tick.Reset(jitter(cfg.HealthInterval))
		}
		if d := c.idleFor(readyAt); d > 0 && !c.busyNow(addr) {
			began := time.Now()
			if c.stopIdle(id, cmd, exited, d, started) {
				return time.Since(readyAt), began
			}
			registered = false // re-registered below
		}
		readiness := !healthy || !time.Now().Before(nextReadiness)
		path := pathHealthy
		if readiness {
			path, nextReadiness = pathReady, time.Now().Add(jitter(cfg.ReadinessInterval))
		}
		h, answered, ops := c.s.checker.steady(c.ctx, addr, c.tenant.PrimaryHost, path)
		if c.ctx.Err() != nil || exitedNow() {
			continue // handled at the top of the loop
		}
		if answered {
			c.noteBusy(ops)
		}
		if !readiness {
			h = healthy // liveness only: readiness is what the last /readyz said
		}
		if answered {
			unanswered = 0
		} else if unanswered++; cfg.LivenessFailures > 0 && unanswered >= cfg.LivenessFailures {
			c.log.Warn("child hung: health checks unanswered; killing and replacing it", "pid", pid, "checks", unanswered)
			c.s.met.livenessRestarts.Inc()
			c.deregister(id)
			c.setState(StateStopping)
			if err := kill(cmd); err != nil {
				c.log.Warn("send SIGKILL to child failed", "pid", pid, "err", err)
			}
			<-exited
			c.logExit("hung child killed", cmd, started)
			return time.Since(readyAt), time.Time{}
		}
		if h != healthy {
			healthy, registered = h, false
			if h {
				c.setState(StateReady)
				c.log.Info("child healthy again", "pid", pid)
			} else {
				c.setState(StateUnhealthy)
				c.log.Warn("child unhealthy: /readyz check failed", "pid", pid)
			}
		}
		if !registered {
			registered = c.register(id, addr, healthy)
		}
	}
}

// stopIdle stops an idle child (idle > 0) or one evicted for the running
// cap (idle 0): deregister, let proxies notice, and stop it gracefully
// unless a request came meanwhile (then it reports false and the caller
// registers it again).
func (c *child) stopIdle(id string, cmd *exec.Cmd, exited <-chan struct{}, idle time.Duration, started time.Time) bool {
	if idle > 0 {
		c.log.Info("tenant idle; stopping child", "pid", cmd.Process.Pid, "idle_for", idle.Round(time.Second),
			"idle_timeout", time.Duration(c.idleAfter.Load()))
	} else {
		c.log.Info("evicted for the running cap; stopping child", "pid", cmd.Process.Pid)
	}
	c.deregister(id)
	decided := time.Now()
	// The proxy must have stopped routing to it (else a request could be
	// dialled after the listener closed: a 502), then a moment for
	// requests that picked it just before.
	if !c.awaitUnrouted(id) || !sleep(c.ctx, idleDrain) {
		return false // kept (the caller registers it again), or c.ctx ended: the caller stops it
	}
	inFlight, last := c.s.cfg.Activity.Activity(c.tenant.Name)
	if inFlight > 0 || !last.Before(decided) || c.wokenSince(decided) {
		c.log.Info("request during idle stop; keeping child")
		return false
	}
	if idle > 0 {
		c.s.met.idleStops.Inc()
	} else {
		c.s.met.evictions.Inc()
	}
	c.stop(cmd, exited)
	return true
}

func (c *child) register(id, addr string, healthy bool) bool {
	ctx, cancel := context.WithTimeout(c.ctx, registryTimeout)
	defer cancel()
	in := registry.Instance{ID: id, Tenant: c.tenant.Name, Addr: addr, Healthy: healthy, MemoryKills: int(c.memKills.Load())}
	if err := c.s.cfg.Registry.RegisterInstance(ctx, in); err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("register instance failed; retrying at the next check", "instance", id, "err", err)
		}
		return false
	}
	c.log.Debug("registered instance", "instance", id, "addr", addr, "healthy", healthy)
	return true
}

// deregister runs even when c.ctx has ended: it is the first step of
// stopping.
func (c *child) deregister(id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), registryTimeout)
	defer cancel()
	if err := c.s.cfg.Registry.DeregisterInstance(ctx, id); err != nil {
		c.log.Warn("deregister instance failed", "instance", id, "err", err)
		return
	}
	c.log.Debug("deregistered instance", "instance", id)
}

// stop sends SIGTERM to the child's process group, SIGKILL after
// StopGrace, and waits for the child to be reaped.
func (c *child) stop(cmd *exec.Cmd, exited <-chan struct{}) {
	c.setState(StateStopping)
	started := time.Now()
	pid := cmd.Process.Pid
	select {
	case <-exited:
	default:
		if err := terminate(cmd); err != nil {
			c.log.Warn("send SIGTERM to child failed", "pid", pid, "err", err)
		}
		t := time.NewTimer(c.s.cfg.StopGrace)
		select {
		case <-exited:
		case <-t.C:
			c.log.Warn("child ignored SIGTERM; killing it", "pid", pid, "stop_grace", c.s.cfg.StopGrace)
			if err := kill(cmd); err != nil {
				c.log.Warn("send SIGKILL to child failed", "pid", pid, "err", err)
			}
			<-exited
		}
		t.Stop()
	}
	c.logExit("child stopped", cmd, started)
}

// logExit logs how the process ended and records it in the status.
func (c *child) logExit(msg string, cmd *exec.Cmd, since time.Time) {
	ps := cmd.ProcessState
	attrs := []any{"pid", cmd.Process.Pid, "after", time.Since(since).Round(time.Millisecond)}
	desc := "unknown"
	if ps != nil {
		desc = ps.String()
		if sig := exitSignal(ps); sig != "" {
			attrs = append(attrs, "signal", sig)
		} else {
			attrs = append(attrs, "exit_code", ps.ExitCode())
		}
	}
	c.update(func(st *ChildStatus) { st.LastExit = desc })
	c.log.Info(msg, attrs...)
}

// freeAddr returns a loopback address whose port was free a moment ago.
// Another process may take it before the child binds; the child then
// exits and is restarted on another port after the usual backoff.
func freeAddr(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", host, err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("close probe listener %s: %w", addr, err)
	}
	return addr, nil
}

// backoff is the delay before the restart after the n-th consecutive
// failure (n >= 1): min doubled n-1 times, capped at max, with "equal
// jitter": a uniform pick from [d/2, d].
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
