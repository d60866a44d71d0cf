package supervisor

import (
	"context"
	"strconv"
	"time"
)

// Busy tenants (issue 20): an app that runs an import or a bulk delete in
// the background says so on every /healthz and /readyz answer (BusyHeader, the count
// of such operations; the campus app counts its own and those another
// live process, such as a CLI import, runs in its database). Stopping it
// would roll its work back, so while a tenant is busy:
//
//   - it is not stopped for being idle, and the end of its busy time (the
//     first check that no longer says busy) counts as its last use: its
//     idle timeout starts again then;
//   - it is never chosen by the running cap's eviction (running.go): a
//     waking tenant evicts another, or waits within the proxy's hold
//     timeout and gets its 503 with Retry-After;
//   - the steady checks (every HealthInterval) keep the flag
//     current, and an idle stop or eviction asks once more right before
//     it begins, so an import started since the last check is seen.
//
// The protection is bounded: a tenant busy for longer than
// Config.BusyLimit (default DefaultBusyLimit, three times the store's
// default import deadline of 10 minutes, which ends any import first) is
// treated as idle again, with a warning, so that a hung app cannot keep
// its school running forever. Both edges are logged.

// BusyHeader is the /healthz answer's header that carries the tenant's
// running operations (app.BusyHeader; the same name, checked by a test).
const BusyHeader = "Campus-Busy"

// DefaultBusyLimit is the default Config.BusyLimit.
const DefaultBusyLimit = 30 * time.Minute

// busyCount reads BusyHeader (0 when absent or not a count).
func busyCount(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// noteBusy records what a /healthz answer said (ops running) and logs the
// edges.
func (c *child) noteBusy(ops int) {
	now := time.Now()
	if ops > 0 {
		c.busySeen.Store(now.UnixNano())
		if c.busySince.CompareAndSwap(0, now.UnixNano()) {
			c.busyWarned.Store(false)
			c.log.Info("tenant busy: imports or deletes running; not stopped for idleness or the running cap meanwhile",
				"operations", ops, "busy_limit", c.s.cfg.BusyLimit)
		}
		return
	}
	if since := c.busySince.Swap(0); since != 0 {
		// Its end is known from now: the idle timeout counts from here.
		c.busySeen.Store(now.UnixNano())
		c.log.Info("tenant no longer busy", "busy_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond))
	}
}

// busy reports whether the tenant's last /healthz said it is busy, within
// BusyLimit of when it became so.
func (c *child) busy() bool {
	since := c.busySince.Load()
	if since == 0 {
		return false
	}
	if d := time.Since(time.Unix(0, since)); d > c.s.cfg.BusyLimit {
		if c.busyWarned.CompareAndSwap(false, true) {
			c.log.Warn("tenant busy for longer than the busy limit; it may be stopped when idle again",
				"busy_for", d.Round(time.Second), "busy_limit", c.s.cfg.BusyLimit)
		}
		return false
	}
	return true
}

// lastBusy is when the tenant was last seen busy (zero time: never),
// never later than BusyLimit after it became busy: an app that says busy
// for ever is not kept up by it.
func (c *child) lastBusy() time.Time {
	at := c.busySeen.Load()
	if at == 0 {
		return time.Time{}
	}
	if since := c.busySince.Load(); since != 0 {
		at = min(at, since+int64(c.s.cfg.BusyLimit))
	}
	return time.Unix(0, at)
}

// busyNow asks the child's /healthz right now (no check slot: it decides
// a stop) and reports whether it is busy; an unanswered check keeps what
// was known.
func (c *child) busyNow(addr string) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.checker.client.Timeout)
	defer cancel()
	if _, answered, ops := c.s.checker.probe(ctx, addr, c.tenant.PrimaryHost, pathHealthy); answered {
		c.noteBusy(ops)
	}
	if c.busy() {
		c.log.Info("tenant idle but busy (imports or deletes running); not stopping it")
		return true
	}
	return false
}
