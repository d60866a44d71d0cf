package consul

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/campus-saas/campus/registry"
)

// The watcher follows two blocking queries, whatever the number of
// nodes, services and tenants (issue 24: Consul refuses more than
// limits.http_max_conns_per_client, 200 by default, connections from one
// address, and one query per node held about 2 × nodes):
//
//   - "kv":      the tenants' KV prefix;
//   - "catalog": /v1/internal/ui/nodes, the datacenter's nodes, each with
//     its services (with addresses) and its health checks, in one answer
//     at one index. Of it the watcher keeps each node's app services and
//     their and the node's checks, and merges again only the nodes whose
//     part changed (issue 11: one machine's change costs that machine's
//     instances, not the fleet's, to merge).
//
// One catalog answer costs O(fleet) to send and decode, where the per-node
// queries it replaces cost O(node): it is paced by its size (ListPace,
// MaxCatalogPace) so that under churn changes coalesce, and a new host does
// not wait for it (LookupHost). Alternatives measured or weighed are in
// docs/BENCHMARKS.md (issue 24).
//
// Instances are the node services whose name is ServicePrefix+<tenant>:
// the tenant comes from the service name, which Consul ACLs tie to the
// tenant's token, never from meta or tags, which any registrant can set.
// Per-tenant service names are what makes ACLs possible (rules are per
// service name), and this is why the watch does not query one service's
// health: with 10,000 tenants that would be 10,000 blocking queries.
// Nodes imported from a cluster peer are ignored: their service names are
// not under this datacenter's ACLs.
//
// Source names, also the "source" label of the watch metrics.
const (
	srcKV      = "kv"
	srcCatalog = "catalog"
)

// catalogPath is the datacenter's node dump, a blocking endpoint of the
// agent's HTTP API (the one its UI lists nodes with; Consul 1.16).
const catalogPath = "/v1/internal/ui/nodes"

// ErrClosed is returned by Snapshot and Watch after Close.
var ErrClosed = errors.New("consul registry closed")

// sourceState is what the watcher holds of one source.
type sourceState struct {
	have    bool
	applied uint64    // Consul index of the data applied
	lastOK  time.Time // last successful answer
}

// mergeState is the watcher's view, guarded by Registry.mu.
type mergeState struct {
	src map[string]*sourceState // by source: kv, catalog

	tenants  []registry.Tenant
	cache    map[string]cachedTenant        // tenant key → decoded value
	checks   map[string]api.HealthChecks    // node → its own and its app services' checks
	nodes    []string                       // sorted
	services map[string][]*api.AgentService // node → its campus app services

	// What LookupHost read that is newer than the watch's lists, kept
	// until the lists are at least as new (lookup.go).
	tenantPins map[string]tenantPin // tenant key → record
	instPins   map[svcKey]instPin

	nodeInst   map[string][]registry.Instance // node → its merged instances
	dirtyNodes map[string]bool                // nodes whose services or checks moved since

	instances      []registry.Instance
	instancesDirty bool // checks, nodes, services or pins moved since instances was merged
	version        uint64
	snap           *registry.Snapshot // nil until every source answered once
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
	for _, key := range []string{srcKV, srcCatalog} {
		r.wg.Add(1)
		go r.loop(r.ctx, key)
	}
}

// fetch runs one query for the source key and returns its index and a
// function that applies the answer; the function must be called with r.mu
// held.
func (r *Registry) fetch(key string, q *api.QueryOptions) (uint64, int, func(force bool), error) {
	switch key {
	case srcKV:
		pairs, meta, err := r.client.KV().List(r.tenantsPrefix, q)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("list %s: %w", r.tenantsPrefix, err)
		}
		return meta.LastIndex, len(pairs), func(force bool) { r.applyKVLocked(pairs, meta.LastIndex, force) }, nil
	case srcCatalog:
		var dump []dumpNode
		meta, err := r.client.Raw().Query(catalogPath, &dump, q)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("read the catalog (%s): %w", catalogPath, err)
		}
		n := 0
		for _, d := range dump {
			n += len(d.Services) + len(d.Checks)
		}
		return meta.LastIndex, n, func(force bool) { r.applyCatalogLocked(dump, meta.LastIndex, force) }, nil
	}
	return 0, 0, nil, fmt.Errorf("unknown watch source %q", key)
}

// staleAfter is how long a blocking query may go unanswered before the
// watcher gives up on it and reconnects.
func (r *Registry) staleAfter() time.Duration {
	return r.cfg.WatchWait + r.cfg.WatchWait/16 + r.cfg.StaleMargin
}

// loop follows one source with blocking queries until ctx ends (Close).
func (r *Registry) loop(ctx context.Context, key string) {
	defer r.wg.Done()
	log := r.log.With("source", key)
	lim := newLimiter(r.cfg.MaxQueryRate)
	bo := backoff{min: r.cfg.RetryMin, max: r.cfg.RetryMax}
	var index uint64
	resync := false // the next answer replaces the state whatever its index
	for {
		if lim.Wait(ctx) != nil {
			return // ctx ended
		}
		qctx, cancel := context.WithTimeout(ctx, r.staleAfter())
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: r.cfg.WatchWait, AllowStale: true}).WithContext(qctx)
		newIndex, items, apply, err := r.fetch(key, q)
		stale := errors.Is(qctx.Err(), context.DeadlineExceeded)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// After a failure, read once without blocking: the agent may
			// have come back with lower indexes (a restart, a restore),
			// and a query blocking on the old index would wait its whole
			// WatchWait while writes below that index go unseen. That
			// first answer is applied even if its index is lower.
			index, resync = 0, true
			if stale {
				r.metrics.reconnects.Inc()
				log.Warn("no answer from consul in time; reconnecting", "waited", r.staleAfter(), "index", index)
				continue
			}
			r.metrics.errors.WithLabelValues(key).Inc()
			d := bo.next()
			log.Warn("consul watch failed; keeping the last snapshot", "err", err, "retry_in", d.Round(time.Millisecond), "failures", bo.n)
			if !sleep(ctx, d) {
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
		reset := newIndex < index || resync
		if newIndex < index {
			log.Info("consul index went backwards; resetting", "from", index, "to", newIndex)
		}
		resync = false
		r.mu.Lock()
		apply(reset)
		r.sourceLocked(key).lastOK = time.Now()
		r.updateFreshnessLocked()
		r.mu.Unlock()
		r.metrics.lastIndex.WithLabelValues(key).Set(float64(newIndex))
		// Sanity rule from the same documentation: never block on index 0.
		index = max(newIndex, 1)
		// A list of n entries costs Consul and this process O(n) to send
		// and decode again, whatever changed: under churn, read it at most
		// every n × ListPace (at most MaxListPace, MaxCatalogPace for the
		// catalog), so that changes
		// coalesce into fewer reads (LookupHost brings a new host's route
		// meanwhile; see Config.ListPace).
		limit := r.cfg.MaxListPace
		if key == srcCatalog {
			limit = r.cfg.MaxCatalogPace
		}
		if pace := min(time.Duration(items)*r.cfg.ListPace, limit); pace > 0 && !sleep(ctx, pace) {
			return
		}
	}
}

func (r *Registry) sourceLocked(key string) *sourceState {
	s := r.state.src[key]
	if s == nil {
		s = &sourceState{}
		r.state.src[key] = s
	}
	return s
}

// oldestLocked is the oldest last answer over every source, zero while
// one has never answered.
func (r *Registry) oldestLocked() time.Time {
	var oldest time.Time
	for _, s := range r.state.src {
		if s.lastOK.IsZero() {
			return time.Time{}
		}
		if oldest.IsZero() || s.lastOK.Before(oldest) {
			oldest = s.lastOK
		}
	}
	return oldest
}

// updateFreshnessLocked sets the last-update gauge to the oldest of the
// sources' last answers, so a single stuck loop shows.
func (r *Registry) updateFreshnessLocked() {
	if oldest := r.oldestLocked(); !oldest.IsZero() {
		r.metrics.lastUpdate.Set(float64(oldest.UnixNano()) / 1e9)
	}
}

// LastUpdate is when the oldest of the watch loops last heard from Consul
// (zero before all have).
func (r *Registry) LastUpdate() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.oldestLocked()
}

// acceptLocked reports whether an answer at index may replace what the
// source holds: older answers (a lagging server behind AllowStale, or a
// Snapshot read that overtook the loop) are dropped unless the loop was
// reset.
func (r *Registry) acceptLocked(key string, index uint64, force bool) bool {
	s := r.sourceLocked(key)
	if s.have && index < s.applied && !force {
		return false
	}
	s.have, s.applied = true, index
	return true
}

func (r *Registry) applyKVLocked(pairs api.KVPairs, index uint64, force bool) {
	if !r.acceptLocked(srcKV, index, force) {
		return
	}
	cache := make(map[string]cachedTenant, len(pairs))
	for _, p := range pairs {
		if strings.Contains(strings.TrimPrefix(p.Key, r.tenantsPrefix), "/") {
			continue
		}
		c, ok := r.state.cache[p.Key]
		if !ok || c.modify != p.ModifyIndex {
			c = r.cachedTenant(p)
		}
		cache[p.Key] = c
	}
	// A record read by LookupHost after the list's index stays until a
	// list at least as new comes (after an index reset, none is older).
	for key, pin := range r.state.tenantPins {
		if force || index >= pin.modify {
			delete(r.state.tenantPins, key)
			continue
		}
		cache[key] = pin.cachedTenant
	}
	tenants := make([]registry.Tenant, 0, len(cache))
	for _, c := range cache {
		if c.ok {
			tenants = append(tenants, c.t)
		}
	}
	slices.SortFunc(tenants, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })
	r.state.cache = cache
	r.state.tenants = tenants
	r.publishLocked()
}

// cachedTenant decodes a tenant key (the one decoding of the watch and of
// LookupHost); an unreadable one is logged and kept out of snapshots.
func (r *Registry) cachedTenant(p *api.KVPair) cachedTenant {
	t, err := r.decodeTenant(p)
	if err != nil {
		r.log.Warn("ignoring unreadable tenant key", "key", p.Key, "err", err)
	}
	return cachedTenant{modify: p.ModifyIndex, t: t, ok: err == nil}
}

// dumpNode is one node of the catalog answer, decoded into what the
// watcher uses (encoding/json skips the rest).
type dumpNode struct {
	Node     string
	Address  string
	PeerName string
	Services []dumpService
	Checks   []dumpCheck
}

type dumpService struct {
	ID, Service, Address string
	Port                 int
	Meta                 map[string]string // MetaMemoryKills is read from it
	ModifyIndex          uint64
}

type dumpCheck struct {
	CheckID, ServiceID, Status string
	ModifyIndex                uint64
}

// applyCatalogLocked replaces the nodes, their app services and checks,
// and marks dirty the nodes whose part changed.
func (r *Registry) applyCatalogLocked(dump []dumpNode, index uint64, force bool) {
	if !r.acceptLocked(srcCatalog, index, force) {
		return
	}
	st := &r.state
	names := make([]string, 0, len(dump))
	seen := make(map[string]bool, len(dump))
	for _, d := range dump {
		if d.PeerName != "" || seen[d.Node] {
			continue
		}
		seen[d.Node] = true
		names = append(names, d.Node)
		svcs, checks := r.nodeView(d)
		if !slices.EqualFunc(svcs, st.services[d.Node], sameService) || !slices.EqualFunc(checks, st.checks[d.Node], sameCheck) {
			st.services[d.Node], st.checks[d.Node] = svcs, checks
			st.dirtyNodes[d.Node] = true
			st.instancesDirty = true
		}
	}
	for _, node := range st.nodes {
		if !seen[node] {
			delete(st.services, node)
			delete(st.checks, node)
			delete(st.nodeInst, node)
			delete(st.dirtyNodes, node)
			st.instancesDirty = true
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, st.nodes) {
		st.nodes = names
		st.instancesDirty = true
	}
	if force {
		clear(st.instPins) // their indexes say nothing after a reset
		st.instancesDirty = true
	}
	r.publishLocked()
}

// nodeView is what the watcher keeps of one node: its app services (the
// node's address for those without their own) and the checks of the node
// and of those services.
func (r *Registry) nodeView(d dumpNode) ([]*api.AgentService, api.HealthChecks) {
	var svcs []*api.AgentService
	ids := map[string]bool{}
	for _, s := range d.Services {
		if _, ok := r.tenantOfService(s.Service); !ok {
			continue
		}
		addr := s.Address
		if addr == "" {
			addr = d.Address
		}
		svcs = append(svcs, &api.AgentService{ID: s.ID, Service: s.Service, Address: addr, Port: s.Port, ModifyIndex: s.ModifyIndex,
			Meta: keepMeta(s.Meta)})
		ids[s.ID] = true
	}
	var checks api.HealthChecks
	for _, c := range d.Checks {
		if c.ServiceID == "" || ids[c.ServiceID] {
			checks = append(checks, &api.HealthCheck{Node: d.Node, CheckID: c.CheckID, ServiceID: c.ServiceID, Status: c.Status, ModifyIndex: c.ModifyIndex})
		}
	}
	return svcs, checks
}

func sameService(a, b *api.AgentService) bool {
	return a.ID == b.ID && a.Service == b.Service && a.Address == b.Address && a.Port == b.Port && a.ModifyIndex == b.ModifyIndex
}

func sameCheck(a, b *api.HealthCheck) bool {
	return a.CheckID == b.CheckID && a.ServiceID == b.ServiceID && a.Status == b.Status && a.ModifyIndex == b.ModifyIndex
}

// tenantOfService returns the tenant whose app service is name.
func (r *Registry) tenantOfService(name string) (string, bool) {
	t, ok := strings.CutPrefix(name, r.cfg.ServicePrefix)
	if !ok || registry.ValidateName(t) != nil {
		return "", false
	}
	return t, true
}

// ServiceName is the Consul service name of tenant's app instances.
func (r *Registry) ServiceName(tenant string) string { return r.cfg.ServicePrefix + tenant }

// readyLocked reports whether both sources have answered once.
func (r *Registry) readyLocked() bool {
	for _, key := range []string{srcKV, srcCatalog} {
		if s := r.state.src[key]; s == nil || !s.have {
			return false
		}
	}
	return true
}

// instancesLocked merges the nodes' services with the checks (see
// instanceOf), and the instances LookupHost read that the lists have not
// caught up with yet.
func (r *Registry) instancesLocked() []registry.Instance {
	st := &r.state
	r.coverPinsLocked()
	n := len(st.instPins)
	for _, node := range st.nodes {
		if _, ok := st.nodeInst[node]; !ok || st.dirtyNodes[node] {
			st.nodeInst[node] = r.nodeInstancesLocked(node)
		}
		n += len(st.nodeInst[node])
	}
	clear(st.dirtyNodes)
	// Each node's list is sorted: merge them (and the pins) instead of
	// sorting 10,000 instances again.
	lists := make([][]registry.Instance, 0, len(st.nodes)+1)
	for _, node := range st.nodes {
		list := st.nodeInst[node]
		if len(st.instPins) > 0 {
			list = slices.DeleteFunc(slices.Clone(list), func(in registry.Instance) bool {
				_, pinned := st.instPins[svcKey{node, in.ID}]
				return pinned
			})
		}
		lists = append(lists, list)
	}
	if len(st.instPins) > 0 {
		pins := make([]registry.Instance, 0, len(st.instPins))
		for _, pin := range st.instPins {
			pins = append(pins, pin.in)
		}
		slices.SortFunc(pins, compareInstances)
		lists = append(lists, pins)
	}
	return mergeSorted(lists, n)
}

// compareInstances orders instances as snapshots list them: by tenant,
// then ID.
func compareInstances(a, b registry.Instance) int {
	if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// mergeSorted merges lists, each sorted by compareInstances, into one
// sorted list (stable: equal instances keep the order of their lists).
func mergeSorted(lists [][]registry.Instance, n int) []registry.Instance {
	out := make([]registry.Instance, 0, n)
	h := &instanceHeap{}
	for i, l := range lists {
		if len(l) > 0 {
			h.heads = append(h.heads, head{list: i})
		}
	}
	h.lists = lists
	heap.Init(h)
	for h.Len() > 0 {
		top := &h.heads[0]
		out = append(out, lists[top.list][top.pos])
		top.pos++
		if top.pos == len(lists[top.list]) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return out
}

type head struct{ list, pos int }

// instanceHeap is a min-heap of the lists' next instances.
type instanceHeap struct {
	lists [][]registry.Instance
	heads []head
}

func (h *instanceHeap) Len() int { return len(h.heads) }
func (h *instanceHeap) Less(i, j int) bool {
	a, b := h.heads[i], h.heads[j]
	if c := compareInstances(h.lists[a.list][a.pos], h.lists[b.list][b.pos]); c != 0 {
		return c < 0
	}
	return a.list < b.list
}
func (h *instanceHeap) Swap(i, j int) { h.heads[i], h.heads[j] = h.heads[j], h.heads[i] }
func (h *instanceHeap) Push(x any)    { h.heads = append(h.heads, x.(head)) }
func (h *instanceHeap) Pop() any {
	x := h.heads[len(h.heads)-1]
	h.heads = h.heads[:len(h.heads)-1]
	return x
}

// nodeInstancesLocked merges one node's services with its checks. It runs
// only for a node whose services or checks moved: the other nodes' merges
// are kept (with 10,000 instances on many machines, one machine's change
// costs that machine's instances, not the fleet's).
func (r *Registry) nodeInstancesLocked(node string) []registry.Instance {
	checks := map[string]api.HealthChecks{} // by service ID; "" for the node's own
	for _, c := range r.state.checks[node] {
		checks[c.ServiceID] = append(checks[c.ServiceID], c)
	}
	var out []registry.Instance
	for _, s := range r.state.services[node] {
		if in, ok := r.instanceOf(s, checks[s.ID], checks[""]); ok {
			out = append(out, in)
		}
	}
	slices.SortStableFunc(out, compareInstances)
	return out
}

// svcKey names one service instance (or, with an empty service, a node's
// own checks).
type svcKey struct{ node, service string }

// instanceOf is the one rule, for the watch and LookupHost alike, that
// turns a Consul service into an instance: its tenant comes from the
// service name alone (false when the name is no app service); its address
// is the service's (the caller fills in the node's when empty); it is
// healthy when it has a check of its own and its own checks and its node's
// checks all pass. The node's checks alone (serfHealth) say nothing of the
// app, and a node's service list can be merged before the checks answer
// that lists a new instance's (critical) check.
func (r *Registry) instanceOf(s *api.AgentService, own, node api.HealthChecks) (registry.Instance, bool) {
	tenant, ok := r.tenantOfService(s.Service)
	if !ok {
		return registry.Instance{}, false
	}
	all := append(slices.Clone(node), own...)
	return registry.Instance{
		ID:      s.ID,
		Tenant:  tenant,
		Addr:    net.JoinHostPort(s.Address, strconv.Itoa(s.Port)),
		Healthy: len(own) > 0 && all.AggregatedStatus() == api.HealthPassing,

		MemoryKills: memoryKills(s),
	}, true
}

// publishLocked makes a new snapshot version when every source has
// answered and the merged content differs from the last snapshot.
func (r *Registry) publishLocked() {
	st := &r.state
	if !r.readyLocked() {
		return
	}
	// Merging services with checks costs O(instances); a tenant write
	// does not need it.
	if st.instancesDirty {
		st.instances, st.instancesDirty = r.instancesLocked(), false
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

// Snapshot reads every source from Consul now (read-your-writes for the
// caller), merges them into the watcher's state and returns the result.
// It fails when Consul cannot be read; Watch keeps serving the last
// snapshot meanwhile.
func (r *Registry) Snapshot(ctx context.Context) (registry.Snapshot, error) {
	if r.ctx.Err() != nil {
		return registry.Snapshot{}, ErrClosed
	}
	r.start()
	var applies []func(bool)
	for _, key := range []string{srcKV, srcCatalog} {
		_, _, a, err := r.fetch(key, qopts(ctx))
		if err != nil {
			return registry.Snapshot{}, fmt.Errorf("consul snapshot: %w", err)
		}
		applies = append(applies, a)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range applies {
		a(false)
	}
	if r.state.snap == nil { // both were applied: only a bug gets here
		return registry.Snapshot{}, errors.New("consul snapshot: no snapshot after reading every source")
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

// newLimiter paces one watch loop at perSecond queries a second, with a
// burst of as many (at least one); perSecond <= 0 means unlimited.
func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(math.Ceil(perSecond))))
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
