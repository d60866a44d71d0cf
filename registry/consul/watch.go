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

// The watcher follows a few blocking queries, however many tenants there
// are:
//
//   - "kv":     the tenants' KV prefix;
//   - "nodes":  /v1/catalog/nodes, the datacenter's nodes;
//   - "node":   /v1/catalog/node-services/<node>, one loop per node (one
//     per machine that runs apps), each node's services with addresses;
//   - "checks": /v1/health/node/<node>, one loop per node, each node's
//     health checks. Per node rather than /v1/health/state/any: a check
//     that changes on one machine re-reads that machine's checks, not the
//     whole datacenter's (issue 11: 10,000 instances on many machines).
//
// Instances are the node services whose name is ServicePrefix+<tenant>:
// the tenant comes from the service name, which Consul ACLs tie to the
// tenant's token, never from meta or tags, which any registrant can set.
// Per-tenant service names are what makes ACLs possible (rules are per
// service name), and this is why the watch does not query one service's
// health: with 10,000 tenants that would be 10,000 blocking queries.
//
// Source names, also the "source" label of the watch metrics.
const (
	srcKV     = "kv"
	srcChecks = "checks"
	srcNodes  = "nodes"
	srcNode   = "node"
)

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
	src map[string]*sourceState // by source key: kv, checks, nodes, node/<name>

	tenants  []registry.Tenant
	cache    map[string]cachedTenant        // tenant key → decoded value
	checks   map[string]api.HealthChecks    // node → its checks
	nodes    []string                       // sorted
	services map[string][]*api.AgentService // node → its campus app services
	loops    map[string]context.CancelFunc  // node → its loop

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

func nodeKey(node string) string   { return srcNode + "/" + node }
func checksKey(node string) string { return srcChecks + "/" + node }

// start launches the watch loops once, unless the registry is closed.
func (r *Registry) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	for _, key := range []string{srcKV, srcNodes} {
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
	case srcNodes:
		nodes, meta, err := r.client.Catalog().Nodes(q)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("catalog nodes: %w", err)
		}
		return meta.LastIndex, 0, func(force bool) { r.applyNodesLocked(nodes, meta.LastIndex, force) }, nil
	}
	if node, ok := strings.CutPrefix(key, srcChecks+"/"); ok {
		checks, meta, err := r.client.Health().Node(node, q)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("health checks of node %s: %w", node, err)
		}
		return meta.LastIndex, len(checks), func(force bool) { r.applyChecksLocked(node, checks, meta.LastIndex, force) }, nil
	}
	node := strings.TrimPrefix(key, srcNode+"/")
	list, meta, err := r.client.Catalog().NodeServiceList(node, q)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("services of node %s: %w", node, err)
	}
	n := 0
	if list != nil {
		n = len(list.Services)
	}
	return meta.LastIndex, n, func(force bool) { r.applyNodeLocked(node, list, meta.LastIndex, force) }, nil
}

// metricSource is the bounded "source" label of a source key.
func metricSource(key string) string {
	if src, _, ok := strings.Cut(key, "/"); ok {
		return src // node or checks
	}
	return key
}

// staleAfter is how long a blocking query may go unanswered before the
// watcher gives up on it and reconnects.
func (r *Registry) staleAfter() time.Duration {
	return r.cfg.WatchWait + r.cfg.WatchWait/16 + r.cfg.StaleMargin
}

// loop follows one source with blocking queries until ctx ends (Close,
// or, for a node loop, the node leaving the catalog).
func (r *Registry) loop(ctx context.Context, key string) {
	defer r.wg.Done()
	log := r.log.With("source", key)
	label := metricSource(key)
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
			r.metrics.errors.WithLabelValues(label).Inc()
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
		if ctx.Err() == nil { // a node loop stopped meanwhile applies nothing
			apply(reset)
			r.sourceLocked(key).lastOK = time.Now()
			r.updateFreshnessLocked()
		}
		r.mu.Unlock()
		if label == key { // kv, nodes: one loop each
			r.metrics.lastIndex.WithLabelValues(label).Set(float64(newIndex))
		}
		// Sanity rule from the same documentation: never block on index 0.
		index = max(newIndex, 1)
		// A list of n entries costs Consul and this process O(n) to send
		// and decode again, whatever changed: under churn, read it at most
		// every n × ListPace, so that changes coalesce into fewer reads
		// (LookupHost brings a new host's route meanwhile; see Config.ListPace).
		if pace := time.Duration(items) * r.cfg.ListPace; pace > 0 && !sleep(ctx, pace) {
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

func (r *Registry) applyChecksLocked(node string, checks api.HealthChecks, index uint64, force bool) {
	if !slices.Contains(r.state.nodes, node) || !r.acceptLocked(checksKey(node), index, force) {
		return
	}
	r.state.checks[node] = checks
	r.state.dirtyNodes[node] = true
	if force {
		clear(r.state.instPins) // their indexes say nothing after a reset
	}
	r.state.instancesDirty = true
	r.publishLocked()
}

// applyNodesLocked starts a loop for each node that joined and stops the
// loop of each node that left.
func (r *Registry) applyNodesLocked(nodes []*api.Node, index uint64, force bool) {
	if !r.acceptLocked(srcNodes, index, force) {
		return
	}
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	st := &r.state
	for node, stop := range st.loops {
		if !slices.Contains(names, node) {
			stop()
			delete(st.loops, node)
			delete(st.services, node)
			delete(st.checks, node)
			delete(st.nodeInst, node)
			delete(st.src, nodeKey(node))
			delete(st.src, checksKey(node))
		}
	}
	for _, node := range names {
		if _, ok := st.loops[node]; ok || r.closed || !r.started {
			continue
		}
		ctx, cancel := context.WithCancel(r.ctx)
		st.loops[node] = cancel // stops both loops of the node
		r.wg.Add(2)
		go r.loop(ctx, nodeKey(node))
		go r.loop(ctx, checksKey(node))
	}
	st.nodes = names
	r.state.instancesDirty = true
	r.publishLocked()
}

func (r *Registry) applyNodeLocked(node string, list *api.CatalogNodeServiceList, index uint64, force bool) {
	if !slices.Contains(r.state.nodes, node) || !r.acceptLocked(nodeKey(node), index, force) {
		return
	}
	var svcs []*api.AgentService
	if list != nil {
		for _, s := range list.Services {
			if _, ok := r.tenantOfService(s.Service); ok {
				if s.Address == "" && list.Node != nil {
					s.Address = list.Node.Address
				}
				svcs = append(svcs, s)
			}
		}
	}
	r.state.services[node] = svcs
	r.state.dirtyNodes[node] = true
	if force {
		clear(r.state.instPins)
	}
	r.state.instancesDirty = true
	r.publishLocked()
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

// readyLocked reports whether every source, every node's included, has
// answered once.
func (r *Registry) readyLocked() bool {
	for _, key := range []string{srcKV, srcNodes} {
		if s := r.state.src[key]; s == nil || !s.have {
			return false
		}
	}
	for _, node := range r.state.nodes {
		for _, key := range []string{nodeKey(node), checksKey(node)} {
			if s := r.state.src[key]; s == nil || !s.have {
				return false
			}
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
	for attempt := 0; ; attempt++ {
		snap, err := r.readAll(ctx)
		if !errors.Is(err, errNodesMoved) || attempt == 3 {
			return snap, err
		}
	}
}

// errNodesMoved: a node joined while a Snapshot read the others.
var errNodesMoved = fmt.Errorf("consul snapshot: the node list changed while it was read: %w", registry.ErrConflict)

func (r *Registry) readAll(ctx context.Context) (registry.Snapshot, error) {
	var applies []func(bool)
	for _, key := range []string{srcKV, srcNodes} {
		_, _, a, err := r.fetch(key, qopts(ctx))
		if err != nil {
			return registry.Snapshot{}, fmt.Errorf("consul snapshot: %w", err)
		}
		applies = append(applies, a)
	}
	r.mu.Lock()
	for _, a := range applies {
		a(false)
	}
	nodes := slices.Clone(r.state.nodes)
	r.mu.Unlock()
	applies = applies[:0]
	for _, node := range nodes {
		for _, key := range []string{nodeKey(node), checksKey(node)} {
			_, _, a, err := r.fetch(key, qopts(ctx))
			if err != nil {
				return registry.Snapshot{}, fmt.Errorf("consul snapshot: %w", err)
			}
			applies = append(applies, a)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range applies {
		a(false)
	}
	if r.state.snap == nil {
		return registry.Snapshot{}, errNodesMoved
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
