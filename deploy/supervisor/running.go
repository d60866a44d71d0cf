package supervisor

import (
	"sync"
	"time"
)

// Memory that is a budget (issue 20), per machine: at most
// Config.MaxRunning children have a process (starting, ready, unhealthy or
// stopping), whatever the number of tenants.
//
//   - A start someone waits for (a wake in the last minute) that finds no
//     room asks the least recently used running child to stop, through the
//     same drain as the idle stop (deregister, wait until the proxy no
//     longer routes to it, idleDrain, check once more: a request meanwhile
//     keeps it and another is asked), and takes the room it leaves. The
//     evicted child waits idle for its next wake like an idle-stopped one.
//   - Only children that may idle are evicted (a tenant whose idle timeout
//     is 0 is never stopped), never one with a request in flight or busy
//     with an import or a bulk delete (busy.go), never the waking one.
//   - A start nobody waits for (at supervisor start without StartIdle, a
//     restart after a crash) evicts nobody: with no room it waits idle for
//     a wake.
//   - Requests for the waking tenant are held by the proxy as for any
//     start, never longer than its hold timeout; after it they get its 503
//     with Retry-After.

// capRetry is how often a start waiting for room looks again (for a new
// victim when the last one was kept or none could be asked).
const capRetry = 250 * time.Millisecond

// room counts the children that hold a process, against a cap.
type room struct {
	max   int // 0: no cap
	mu    sync.Mutex
	used  int
	freed chan struct{} // closed (and replaced) when room is left
}

func newRoom(max int) *room { return &room{max: max, freed: make(chan struct{})} }

// take takes room for one process if there is some; otherwise it returns a
// channel closed when room is next left.
func (r *room) take() (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max > 0 && r.used >= r.max {
		return false, r.freed
	}
	r.used++
	return true, nil
}

// leave gives back the room of one process.
func (r *room) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.used--
	close(r.freed)
	r.freed = make(chan struct{})
}

// admission is the outcome of admit.
type admission int

const (
	admitted  admission = iota // room taken: start, then leave
	parked                     // no room and nobody waits: wait idle for a wake
	cancelled                  // c.ctx ended
)

// admit takes room for c's next process, evicting the least recently used
// child when someone waits for c.
func (c *child) admit() admission {
	var victim *child
	waiting := false
	defer func() {
		if waiting {
			c.s.met.startsOverCap.Dec()
		}
	}()
	for {
		ok, freed := c.s.room.take()
		if ok {
			return admitted
		}
		if !c.urgent() {
			c.log.Debug("running cap reached; the tenant waits idle for a request", "max_running", c.s.cfg.MaxRunning)
			return parked
		}
		if !waiting {
			waiting = true
			c.s.met.startsOverCap.Inc()
		}
		if victim == nil || !victim.evicting.Load() {
			victim = c.s.evictLRU(c)
		}
		t := time.NewTimer(capRetry)
		select {
		case <-freed:
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return cancelled
		}
		t.Stop()
	}
}

// evictLRU asks the least recently used child that may be evicted to stop
// and returns it (nil when none may be).
func (s *Supervisor) evictLRU(waking *child) *child {
	if s.cfg.Activity == nil {
		return nil
	}
	s.mu.Lock()
	all := make([]*child, 0, len(s.children))
	for _, c := range s.children {
		all = append(all, c)
	}
	s.mu.Unlock()
	var (
		victim *child
		oldest time.Time
	)
	for _, c := range all {
		if c == waking || !c.mayIdle() || c.evicting.Load() || c.busy() {
			continue
		}
		if st := c.status().State; st != StateReady && st != StateUnhealthy {
			continue
		}
		inFlight, last := s.cfg.Activity.Activity(c.tenant.Name)
		if inFlight > 0 {
			continue
		}
		for _, t := range []int64{c.lastWake.Load(), c.readyAt.Load(), c.busySeen.Load()} {
			if at := time.Unix(0, t); t != 0 && at.After(last) {
				last = at
			}
		}
		if victim == nil || last.Before(oldest) {
			victim, oldest = c, last
		}
	}
	if victim == nil || !victim.evicting.CompareAndSwap(false, true) {
		return nil
	}
	victim.log.Info("running cap reached; stopping the least recently used tenant", "for", waking.tenant.Name,
		"unused_for", time.Since(oldest).Round(time.Millisecond), "max_running", s.cfg.MaxRunning)
	select {
	case victim.evict <- struct{}{}:
	default:
	}
	return victim
}
