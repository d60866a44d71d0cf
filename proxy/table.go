package proxy

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/campus-saas/campus/registry"
)

// table is one immutable routing table. It is built from a snapshot by
// Update, published with an atomic pointer and never modified afterwards
// (only the atomic counters it points to change). Readers never lock.
type table struct {
	seq      uint64 // 0 for the empty table New starts with; +1 per published table
	version  uint64 // registry snapshot version it was built from
	builtAt  time.Time
	routes   map[string]*route // normalised host → route; a tenant's hosts share one route
	replaced chan struct{}     // closed when a newer table is published (wakes held requests)
}

// route is one tenant as the request path sees it.
type route struct {
	tenant      *tenantState
	displayName string
	state       registry.State
	instances   []*instance // every registered instance, for /routes
	pool        []*instance // the healthy ones: candidates for requests
	next        atomic.Uint32
}

// instance is one app instance in one table. Its instanceState is shared
// with the instance of the same ID (and address) in later tables.
type instance struct {
	id      string
	addr    string
	healthy bool
	*instanceState
}

// instanceState is what the proxy learns about an instance while it serves
// requests; it survives table rebuilds (keyed by instance ID).
type instanceState struct {
	addr      string
	inFlight  atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds; set after a dial failure
}

// dialFailureCooldown is how long an instance that refused a connection is
// only used when no other instance is left.
const dialFailureCooldown = 5 * time.Second

func (s *instanceState) markDown(now time.Time) {
	s.downUntil.Store(now.Add(dialFailureCooldown).UnixNano())
}

func (s *instanceState) markUp() {
	if s.downUntil.Load() != 0 {
		s.downUntil.Store(0)
	}
}

func (s *instanceState) down(now int64) bool { return s.downUntil.Load() > now }

// tenantState is per-tenant data that survives rebuilds: metric children
// and the wake rate limit.
type tenantState struct {
	name     string
	metrics  tenantMetrics
	lastWake atomic.Int64 // unix nanoseconds of the last Waker call
}

// pick chooses an instance from the pool: the least in-flight requests
// wins, ties are broken round-robin, instances in tried are skipped, and
// instances with a recent dial failure are used only when nothing else is
// left. It returns nil when every instance has been tried.
func (rt *route) pick(tried []*instance) *instance {
	n := len(rt.pool)
	if n == 0 {
		return nil
	}
	start := int(rt.next.Add(1) % uint32(n))
	now := time.Now().UnixNano()
	var best, fallback *instance
	for i := range n {
		in := rt.pool[(start+i)%n]
		if slices.Contains(tried, in) {
			continue
		}
		if in.down(now) {
			if fallback == nil || in.inFlight.Load() < fallback.inFlight.Load() {
				fallback = in
			}
			continue
		}
		if best == nil || in.inFlight.Load() < best.inFlight.Load() {
			best = in
		}
	}
	if best == nil {
		return fallback
	}
	return best
}

// Update builds a routing table from s and publishes it. It is called by Run
// and may be called directly (tests, static configurations). It does not
// publish when nothing the proxy routes by has changed; requests in flight
// keep the table they started with.
func (p *Proxy) Update(s registry.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seenVersion.Store(s.Version)
	old := p.table.Load()
	if old.seq > 0 && sameRouting(p.lastSnapshot, s) {
		return
	}
	t := p.build(s, old.seq+1)
	p.table.Store(t)
	close(old.replaced) // wake requests held on the old table
	p.lastSnapshot = s

	p.metrics.routes.Set(float64(len(t.routes)))
	p.metrics.tableUpdates.Inc()
	p.metrics.tableLastUpdate.Set(float64(t.builtAt.UnixNano()) / 1e9)
	p.log.Debug("routing table updated", "version", s.Version, "table", t.seq,
		"hosts", len(t.routes), "tenants", len(s.Tenants), "instances", len(s.Instances))
}

// build makes a new table from s. It runs with p.mu held: it reads and
// replaces p.tenants and p.instances, the state carried between tables.
func (p *Proxy) build(s registry.Snapshot, seq uint64) *table {
	t := &table{
		seq:      seq,
		version:  s.Version,
		builtAt:  time.Now(),
		routes:   make(map[string]*route, len(s.Tenants)*2),
		replaced: make(chan struct{}),
	}
	tenants := make(map[string]*tenantState, len(s.Tenants))
	byName := make(map[string]*route, len(s.Tenants))
	var conflicted map[string]bool // hosts claimed by two tenants: routed nowhere
	for _, tn := range s.Tenants {
		ts := p.tenants[tn.Name]
		if ts == nil {
			ts = &tenantState{name: tn.Name, metrics: p.metrics.forTenant(tn.Name)}
		}
		tenants[tn.Name] = ts
		rt := &route{tenant: ts, displayName: tn.DisplayName, state: tn.State}
		byName[tn.Name] = rt
		for _, h := range tn.Hosts {
			host, err := registry.NormalizeHost(h)
			if err != nil {
				p.log.Warn("routing table: skipping malformed host", "tenant", tn.Name, "host", h, "err", err)
				continue
			}
			prev, taken := t.routes[host]
			switch {
			case conflicted[host]:
			case taken && prev != rt:
				// The registry keeps hosts unique; if it ever fails to, route
				// the host nowhere rather than to a guessed tenant.
				p.log.Error("routing table: host claimed by two tenants; not routing it",
					"host", host, "tenant", tn.Name, "other_tenant", prev.tenant.name)
				delete(t.routes, host)
				if conflicted == nil {
					conflicted = map[string]bool{}
				}
				conflicted[host] = true
			default:
				t.routes[host] = rt
			}
		}
	}

	instances := make(map[string]*instanceState, len(s.Instances))
	for _, in := range s.Instances {
		rt := byName[in.Tenant]
		if rt == nil {
			continue // instance of a tenant not (or no longer) in the registry
		}
		st := p.instances[in.ID]
		if st == nil || st.addr != in.Addr {
			st = &instanceState{addr: in.Addr}
		}
		instances[in.ID] = st
		inst := &instance{id: in.ID, addr: in.Addr, healthy: in.Healthy, instanceState: st}
		rt.instances = append(rt.instances, inst)
		if in.Healthy {
			rt.pool = append(rt.pool, inst)
		}
	}
	for _, rt := range byName {
		rt.tenant.metrics.instances.Set(float64(len(rt.pool)))
	}

	for name := range p.tenants {
		if tenants[name] == nil {
			p.metrics.forget(name)
		}
	}
	p.tenants, p.instances = tenants, instances
	return t
}

// sameRouting reports whether two snapshots produce the same table: same
// tenants with the same hosts, display names and states, and the same
// instances (ID, tenant, address, health). Versions and creation times do
// not matter. Snapshots are sorted, so order changes count as changes, which
// only costs a rebuild.
func sameRouting(a, b registry.Snapshot) bool {
	return slices.EqualFunc(a.Tenants, b.Tenants, func(x, y registry.Tenant) bool {
		return x.Name == y.Name && x.DisplayName == y.DisplayName && x.State == y.State &&
			slices.Equal(x.Hosts, y.Hosts)
	}) && slices.Equal(a.Instances, b.Instances)
}
