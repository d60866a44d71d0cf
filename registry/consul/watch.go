package consul

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// source is one of the two watched Consul resources.
type source int

const (
	sourceKV     source = iota // KV list of <prefix>tenants/
	sourceHealth               // /v1/health/service/<ServiceName>
	numSources
)

func (s source) String() string { return [...]string{"kv", "health"}[s] }

// ErrClosed is returned by Snapshot and Watch after Close.
var ErrClosed = errors.New("consul registry closed")

// mergeState is the watcher's view, guarded by Registry.mu.
type mergeState struct {
	have    [numSources]bool
	applied [numSources]uint64    // Consul index of the data applied per source
	lastOK  [numSources]time.Time // last successful answer per source

	tenants   []registry.Tenant
	instances []registry.Instance
	cache     map[string]cachedTenant // tenant key → decoded value

	version uint64
	snap    *registry.Snapshot // nil until both sources answered once
}

// cachedTenant keeps a decoded tenant for as long as its key's ModifyIndex
// does not move, so a list of 10,000 tenants decodes only what changed.
type cachedTenant struct {
	modify uint64
	t      registry.Tenant
	ok     bool
}

// start launches the watch loops once, unless the registry is closed.
func (r *Registry) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	for s := range numSources {
		r.wg.Add(1)
		go r.loop(s)
	}
}

// fetch runs one query for src and returns its index and a function that
// applies the answer; the function must be called with r.mu held.
func (r *Registry) fetch(src source, q *api.QueryOptions) (uint64, func(force bool), error) {
	switch src {
	case sourceKV:
		pairs, meta, err := r.client.KV().List(r.tenantsPrefix, q)
		if err != nil {
			return 0, nil, fmt.Errorf("list %s: %w", r.tenantsPrefix, err)
		}
		return meta.LastIndex, func(force bool) { r.applyKVLocked(pairs, meta.LastIndex, force) }, nil
	default:
		entries, meta, err := r.client.Health().Service(r.cfg.ServiceName, "", false, q)
		if err != nil {
			return 0, nil, fmt.Errorf("health of service %s: %w", r.cfg.ServiceName, err)
		}
		return meta.LastIndex, func(force bool) { r.applyHealthLocked(entries, meta.LastIndex, force) }, nil
	}
}

// staleAfter is how long a blocking query may go unanswered before the
// watcher gives up on it and reconnects.
func (r *Registry) staleAfter() time.Duration {
	return r.cfg.WatchWait + r.cfg.WatchWait/16 + r.cfg.StaleMargin
}

// loop follows one source with blocking queries until Close.
func (r *Registry) loop(src source) {
	defer r.wg.Done()
	log := r.log.With("source", src.String())
	lim := newLimiter(r.cfg.MaxQueryRate)
	bo := backoff{min: r.cfg.RetryMin, max: r.cfg.RetryMax}
	var index uint64
	for {
		if !lim.wait(r.ctx) {
			return
		}
		qctx, cancel := context.WithTimeout(r.ctx, r.staleAfter())
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: r.cfg.WatchWait, AllowStale: true}).WithContext(qctx)
		newIndex, apply, err := r.fetch(src, q)
		stale := errors.Is(qctx.Err(), context.DeadlineExceeded)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			if stale {
				r.metrics.reconnects.Inc()
				log.Warn("no answer from consul in time; reconnecting", "waited", r.staleAfter(), "index", index)
				continue
			}
			r.metrics.errors.WithLabelValues(src.String()).Inc()
			d := bo.next()
			log.Warn("consul watch failed; keeping the last snapshot", "err", err, "retry_in", d.Round(time.Millisecond), "failures", bo.n)
			if !sleep(r.ctx, d) {
				return
			}
			continue
		}
		if bo.n > 0 {
			log.Info("consul watch recovered", "after_failures", bo.n)
		}
		bo.reset()
		// Consul's rule: an index that goes backwards (snapshot restore,
		// tombstone reaping, …) resets the loop. The answer itself is the
		// current state, so it is applied as is and the next query blocks
		// on its index.
		reset := newIndex < index
		if reset {
			log.Info("consul index went backwards; resetting", "from", index, "to", newIndex)
		}
		r.mu.Lock()
		apply(reset)
		r.state.lastOK[src] = time.Now()
		r.updateFreshnessLocked()
		r.mu.Unlock()
		r.metrics.lastIndex.WithLabelValues(src.String()).Set(float64(newIndex))
		// Sanity rule from the same documentation: never block on index 0.
		index = max(newIndex, 1)
	}
}

// updateFreshnessLocked sets the last-update gauge to the older of the two
// sources' last answers, so a single stuck loop shows.
func (r *Registry) updateFreshnessLocked() {
	oldest := r.state.lastOK[0]
	for _, t := range r.state.lastOK[1:] {
		if t.Before(oldest) {
			oldest = t
		}
	}
	if !oldest.IsZero() {
		r.metrics.lastUpdate.Set(float64(oldest.UnixNano()) / 1e9)
	}
}

// LastUpdate is when the older of the two watch loops last heard from
// Consul (zero before both have).
func (r *Registry) LastUpdate() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.state.lastOK[0]
	for _, t := range r.state.lastOK[1:] {
		if t.Before(oldest) {
			oldest = t
		}
	}
	return oldest
}

// accept reports whether an answer at index may replace what src holds:
// older answers (a lagging server behind AllowStale, or a Snapshot read
// that overtook the loop) are dropped unless the loop was reset.
func (r *Registry) acceptLocked(src source, index uint64, force bool) bool {
	st := &r.state
	if st.have[src] && index < st.applied[src] && !force {
		return false
	}
	st.have[src], st.applied[src] = true, index
	return true
}

func (r *Registry) applyKVLocked(pairs api.KVPairs, index uint64, force bool) {
	if !r.acceptLocked(sourceKV, index, force) {
		return
	}
	cache := make(map[string]cachedTenant, len(pairs))
	tenants := make([]registry.Tenant, 0, len(pairs))
	for _, p := range pairs {
		if strings.Contains(strings.TrimPrefix(p.Key, r.tenantsPrefix), "/") {
			continue
		}
		c, ok := r.state.cache[p.Key]
		if !ok || c.modify != p.ModifyIndex {
			t, err := r.decodeTenant(p)
			if err != nil {
				r.log.Warn("ignoring unreadable tenant key", "key", p.Key, "err", err)
			}
			c = cachedTenant{modify: p.ModifyIndex, t: t, ok: err == nil}
		}
		cache[p.Key] = c
		if c.ok {
			tenants = append(tenants, c.t)
		}
	}
	slices.SortFunc(tenants, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })
	r.state.cache = cache
	r.state.tenants = tenants
	r.publishLocked()
}

func (r *Registry) applyHealthLocked(entries []*api.ServiceEntry, index uint64, force bool) {
	if !r.acceptLocked(sourceHealth, index, force) {
		return
	}
	instances := make([]registry.Instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil || e.Service.Meta[MetaTenant] == "" {
			continue
		}
		addr := e.Service.Address
		if addr == "" && e.Node != nil {
			addr = e.Node.Address
		}
		instances = append(instances, registry.Instance{
			ID:      e.Service.ID,
			Tenant:  e.Service.Meta[MetaTenant],
			Addr:    net.JoinHostPort(addr, strconv.Itoa(e.Service.Port)),
			Healthy: e.Checks.AggregatedStatus() == api.HealthPassing,
		})
	}
	slices.SortFunc(instances, func(a, b registry.Instance) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	r.state.instances = instances
	r.publishLocked()
}

// publishLocked makes a new snapshot version when both sources have
// answered and the merged content differs from the last snapshot.
func (r *Registry) publishLocked() {
	st := &r.state
	if !st.have[sourceKV] || !st.have[sourceHealth] {
		return
	}
	if st.snap != nil && tenantsEqual(st.snap.Tenants, st.tenants) && slices.Equal(st.snap.Instances, st.instances) {
		return
	}
	st.version++
	st.snap = &registry.Snapshot{Version: st.version, Tenants: st.tenants, Instances: st.instances}
	close(r.changed)
	r.changed = make(chan struct{})
}

func tenantsEqual(a, b []registry.Tenant) bool {
	return slices.EqualFunc(a, b, registry.Tenant.Equal)
}

// Snapshot reads both sources from Consul now (read-your-writes for the
// caller), merges them into the watcher's state and returns the result.
// It fails when Consul cannot be read; Watch keeps serving the last
// snapshot meanwhile.
func (r *Registry) Snapshot(ctx context.Context) (registry.Snapshot, error) {
	if r.ctx.Err() != nil {
		return registry.Snapshot{}, ErrClosed
	}
	r.start()
	var apply [numSources]func(bool)
	for s := range numSources {
		_, a, err := r.fetch(s, qopts(ctx))
		if err != nil {
			return registry.Snapshot{}, fmt.Errorf("consul snapshot: %w", err)
		}
		apply[s] = a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range numSources {
		apply[s](false)
	}
	return *r.state.snap, nil
}

// Watch returns the first snapshot newer than after, waiting for it; with
// after == 0 it returns the current one (reading Consul if the watcher has
// none yet).
func (r *Registry) Watch(ctx context.Context, after uint64) (registry.Snapshot, error) {
	if r.ctx.Err() != nil {
		return registry.Snapshot{}, ErrClosed
	}
	r.start()
	for {
		r.mu.Lock()
		snap, ch := r.state.snap, r.changed
		r.mu.Unlock()
		if snap != nil && snap.Version > after {
			return *snap, nil
		}
		if after == 0 {
			return r.Snapshot(ctx)
		}
		if err := ctx.Err(); err != nil {
			return registry.Snapshot{}, err
		}
		select {
		case <-ch:
			if r.ctx.Err() != nil {
				return registry.Snapshot{}, ErrClosed
			}
		case <-ctx.Done():
			return registry.Snapshot{}, ctx.Err()
		}
	}
}

// backoff is capped exponential backoff with jitter.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	// Jitter: somewhere in [d/2, d].
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// limiter is a token bucket: rate tokens a second, burst of as many.
type limiter struct {
	rate, tokens float64
	last         time.Time
}

func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate, tokens: rate, last: time.Now()}
}

// wait takes a token, sleeping if there is none; false when ctx ended.
func (l *limiter) wait(ctx context.Context) bool {
	if l == nil {
		return ctx.Err() == nil
	}
	now := time.Now()
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return ctx.Err() == nil
	}
	d := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
	l.tokens = 0
	l.last = now.Add(d)
	return sleep(ctx, d)
}

// sleep waits for d; false when ctx ended first.
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
