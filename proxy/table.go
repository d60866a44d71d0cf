package proxy

import (
	"slices"
	"strings"
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

// route is one tenant as the request path sees it. Like the table, it is
// never modified once published (only its atomic counter moves), so a
// rebuild shares the routes of unchanged tenants with the previous table.
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
	// Guarded by Proxy.mu (build only).
	seen  uint64 // seq of the last table built with it
	inMap bool   // it is Proxy.instances[its ID]
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
	// Scale to zero (issue 12; hold.go): requests held now, and when the
	// last request ended (unix nanoseconds), for Activity.
	held     atomic.Int64
	lastDone atomic.Int64
	// Requests on one of the tenant's instances now, whichever table
	// that instance came from (one dropped from the table meanwhile
	// included): an idle stop must not cut a download short.
	active atomic.Int64

	// Guarded by Proxy.mu (build only; the request path never reads them).
	route *route // the tenant's route in the latest table
	seen  uint64 // seq of the last table built with the tenant
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
	defer func() { // wake lookups waiting for this version (lookup.go)
		p.applied = max(p.applied, s.Version)
		close(p.appliedCh)
		p.appliedCh = make(chan struct{})
	}()
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
// updates p.tenants and p.instances, the state carried between tables.
//
// A rebuild after one registry change among many tenants should cost
// little more than the new host map: a tenant whose display name, state
// and instances (ID, address, health, in order) are as in the last table
// keeps its *route, which is immutable once published and so can be shared
// by both tables (with its round-robin counter); only changed tenants get
// a new one. The carried state is updated in place and swept only when
// something left. BenchmarkUpdate measures it.
func (p *Proxy) build(s registry.Snapshot, seq uint64) *table {
	nhosts := 0
	for i := range s.Tenants {
		nhosts += len(s.Tenants[i].Hosts)
	}
	t := &table{
		seq:      seq,
		version:  s.Version,
		builtAt:  time.Now(),
		routes:   make(map[string]*route, nhosts),
		replaced: make(chan struct{}),
	}
	insts := byTenant(s.Instances)
	var (
		next       int             // where the next tenant's instances probably start in insts
		tenantsN   int             // tenants in this table
		statesN    int             // instance states in this table
		sweep      bool            // p.instances must be swept even if statesN matches its size
		conflicted map[string]bool // hosts claimed by two tenants: routed nowhere
	)
	for i := range s.Tenants {
		tn := &s.Tenants[i]
		if !tn.State.Routed() {
			// Being created or deleted (data kept): the registry keeps its
			// hosts claimed, and they answer like unknown hosts.
			continue
		}
		ts := p.tenants[tn.Name]
		if ts == nil {
			ts = &tenantState{name: tn.Name, metrics: p.metrics.forTenant(tn.Name)}
			p.tenants[tn.Name] = ts
		}
		var mine []registry.Instance
		mine, next = instancesOf(insts, tn.Name, next)

		rt := ts.route
		if ts.seen == seq || !p.unchanged(rt, tn, mine) { // (seen: a tenant listed twice gets two routes)
			var replaced bool
			rt, replaced = p.newRoute(ts, tn, mine, seq)
			sweep = sweep || replaced
			rt.tenant.metrics.instances.Set(float64(len(rt.pool)))
		}
		for _, in := range rt.instances {
			if in.seen != seq {
				in.seen = seq
				statesN++
			}
		}
		if ts.seen != seq {
			ts.seen = seq
			tenantsN++
		}
		ts.route = rt

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

	// Forget tenants and instances that left (only walk the maps when
	// something did).
	if tenantsN != len(p.tenants) {
		for name, ts := range p.tenants {
			if ts.seen != seq {
				delete(p.tenants, name)
				p.metrics.forget(name)
			}
		}
	}
	if sweep || statesN != len(p.instances) {
		for id, st := range p.instances {
			if st.seen != seq {
				st.inMap = false
				delete(p.instances, id)
			}
		}
	}
	return t
}

// unchanged reports whether rt, the tenant's route in the last table, is
// what newRoute would build for tn and its instances now.
func (p *Proxy) unchanged(rt *route, tn *registry.Tenant, mine []registry.Instance) bool {
	if rt == nil || rt.displayName != tn.DisplayName || rt.state != tn.State || len(rt.instances) != len(mine) {
		return false
	}
	for i := range mine {
		in, old := &mine[i], rt.instances[i]
		if old.id != in.ID || old.addr != in.Addr || old.healthy != in.Healthy || !old.inMap { // inMap: p.instances[in.ID] == old.instanceState
			return false
		}
	}
	return true
}

// newRoute builds tn's route over its instances, carrying each instance's
// state by ID (and address) and recording it in p.instances. It reports
// whether it replaced there a state already used by this table (an
// instance ID listed twice): counting states no longer tells whether stale
// ones are left.
func (p *Proxy) newRoute(ts *tenantState, tn *registry.Tenant, mine []registry.Instance, seq uint64) (rt *route, replaced bool) {
	rt = &route{tenant: ts, displayName: tn.DisplayName, state: tn.State}
	if len(mine) == 0 {
		return rt, false
	}
	all := make([]instance, len(mine)) // one allocation for the route's instances
	rt.instances = make([]*instance, len(mine))
	healthy := 0
	for i := range mine {
		in := &mine[i]
		st := p.instances[in.ID]
		if st == nil || st.addr != in.Addr {
			if st != nil {
				st.inMap = false
				replaced = replaced || st.seen == seq
			}
			st = &instanceState{addr: in.Addr, inMap: true}
			p.instances[in.ID] = st
		}
		all[i] = instance{id: in.ID, addr: in.Addr, healthy: in.Healthy, instanceState: st}
		rt.instances[i] = &all[i]
		if in.Healthy {
			healthy++
		}
	}
	if healthy == len(mine) {
		rt.pool = rt.instances // both are read-only once published
	} else if healthy > 0 {
		rt.pool = make([]*instance, 0, healthy)
		for _, in := range rt.instances {
			if in.healthy {
				rt.pool = append(rt.pool, in)
			}
		}
	}
	return rt, replaced
}

// byTenant returns instances grouped by tenant, each tenant's in their
// order in the snapshot: instances itself when it is (registry snapshots
// are sorted by tenant and ID), else a sorted copy.
func byTenant(instances []registry.Instance) []registry.Instance {
	cmp := func(a, b registry.Instance) int { return strings.Compare(a.Tenant, b.Tenant) }
	if slices.IsSortedFunc(instances, cmp) {
		return instances
	}
	sorted := slices.Clone(instances)
	slices.SortStableFunc(sorted, cmp)
	return sorted
}

// instancesOf returns the instances of tenant in insts (grouped by tenant)
// and the index after them. It looks at index hint first: walking tenants
// in name order, one tenant's instances start where the previous one's
// ended.
func instancesOf(insts []registry.Instance, tenant string, hint int) ([]registry.Instance, int) {
	lo := hint
	if lo >= len(insts) || insts[lo].Tenant != tenant {
		lo, _ = slices.BinarySearchFunc(insts, tenant, func(in registry.Instance, t string) int {
			return strings.Compare(in.Tenant, t)
		})
	}
	hi := lo
	for hi < len(insts) && insts[hi].Tenant == tenant {
		hi++
	}
	return insts[lo:hi], hi
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
