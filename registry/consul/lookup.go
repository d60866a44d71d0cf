package consul

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// LookupHost (registry.HostLookup) reads one host from Consul now: its
// owner from <prefix>hosts/<host>, then at once that tenant's record and
// the health of its service (/v1/health/service/<ServicePrefix><tenant>),
// used only when the record routes the host. Three small reads,
// whatever the number of tenants, where the watch must re-read whole
// lists to see the same change.
//
// What it read is decoded and merged exactly as the watch does
// (cachedTenant, instanceOf: the tenant from the service name only, its own
// checks passing) and pinned into the watcher's state: the record until
// the KV list's index reaches its ModifyIndex, each instance until the
// checks list and its node's service list reach its checks' and its
// service's ModifyIndex (or pinMaxAge passes). A pin never outlives data
// at least as new, and older list answers do not undo it.
func (r *Registry) LookupHost(ctx context.Context, host string) (registry.HostLookupResult, error) {
	if r.ctx.Err() != nil {
		return registry.HostLookupResult{}, ErrClosed
	}
	if h, err := registry.NormalizeHost(host); err != nil || h != host {
		return registry.HostLookupResult{}, fmt.Errorf("look up host: %w", invalid("host", "%q is not a normalised host name", truncate(host, 100)))
	}
	r.start()
	none := func() (registry.HostLookupResult, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return registry.HostLookupResult{Version: r.state.version}, nil
	}
	hp, _, err := r.client.KV().Get(r.hostKey(host), qopts(ctx))
	if err != nil {
		return registry.HostLookupResult{}, fmt.Errorf("look up host %s: read its owner from consul: %w", host, err)
	}
	if hp == nil || registry.ValidateName(string(hp.Value)) != nil {
		return none()
	}
	owner := string(hp.Value)
	// The record and the service's health at once: two round trips in
	// all. The health read is wasted when the record does not route host.
	var (
		entries []*api.ServiceEntry
		herr    error
		hdone   = make(chan struct{})
	)
	go func() {
		defer close(hdone)
		entries, _, herr = r.client.Health().Service(r.ServiceName(owner), "", false, qopts(ctx))
	}()
	tp, _, err := r.client.KV().Get(r.tenantKey(owner), qopts(ctx))
	<-hdone
	if err != nil {
		return registry.HostLookupResult{}, fmt.Errorf("look up host %s: read tenant %s from consul: %w", host, owner, err)
	}
	if tp == nil {
		return none()
	}
	c := r.cachedTenant(tp)
	if !c.ok {
		return none()
	}
	// The record, not the host key, says which hosts a tenant routes (as
	// in the watch's table): a host key left behind by a move routes
	// nothing.
	routed := c.t.State.Routed() && c.t.HasHost(host)
	if !routed {
		entries = nil
	} else if herr != nil {
		return registry.HostLookupResult{}, fmt.Errorf("look up host %s: read instances of %s from consul: %w", host, owner, herr)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return registry.HostLookupResult{}, ErrClosed
	}
	r.pinTenantLocked(tp.Key, c)
	healthy := 0
	now := time.Now()
	var pinned []registry.Instance
	for _, e := range entries {
		if e.Service == nil || e.Node == nil || e.Service.Service != r.ServiceName(owner) {
			continue
		}
		s := *e.Service
		if s.Address == "" {
			s.Address = e.Node.Address
		}
		var own, node api.HealthChecks
		var checksAt uint64
		for _, hc := range e.Checks {
			switch hc.ServiceID {
			case s.ID:
				own = append(own, hc)
			case "":
				node = append(node, hc)
			default:
				continue
			}
			checksAt = max(checksAt, hc.ModifyIndex)
		}
		in, ok := r.instanceOf(&s, own, node)
		if !ok || in.Tenant != owner {
			continue
		}
		if in.Healthy {
			healthy++
		}
		if r.pinInstanceLocked(svcKey{e.Node.Node, s.ID}, instPin{in: in, svc: s.ModifyIndex, checks: checksAt, at: now}) {
			pinned = append(pinned, in)
		}
	}
	if len(pinned) > 0 {
		if r.state.instancesDirty {
			// publishLocked merges everything again, pins included.
		} else {
			// The merged list is current: splice the pins in rather than
			// merge 10,000 services and checks again for one tenant.
			r.state.instances = spliceInstances(r.state.instances, pinned)
		}
	}
	r.publishLocked()
	res := registry.HostLookupResult{Version: r.state.version}
	if routed {
		res.Tenant, res.Healthy = owner, healthy
	}
	return res, nil
}

// pinMaxAge bounds how long a pinned instance stays when its node's list
// never catches up (a node loop stuck on a dead connection).
const pinMaxAge = time.Minute

// tenantPin is a tenant record LookupHost read, at KV ModifyIndex modify.
type tenantPin struct{ cachedTenant }

// instPin is an instance LookupHost read: its service at ModifyIndex svc,
// its own and its node's checks at ModifyIndex checks at most.
type instPin struct {
	in     registry.Instance
	svc    uint64
	checks uint64
	at     time.Time
}

// pinTenantLocked merges a record newer than the KV list into the state.
func (r *Registry) pinTenantLocked(key string, c cachedTenant) {
	if s := r.state.src[srcKV]; s != nil && s.have && s.applied >= c.modify {
		return // the list is at least as new
	}
	if cur, ok := r.state.cache[key]; ok && cur.modify >= c.modify {
		return
	}
	r.state.tenantPins[key] = tenantPin{c}
	r.state.cache[key] = c
	// Copy on write: the last snapshot shares the slice.
	ts := slices.Clone(r.state.tenants)
	i, found := slices.BinarySearchFunc(ts, c.t.Name, func(t registry.Tenant, name string) int { return strings.Compare(t.Name, name) })
	if found {
		ts[i] = c.t
	} else {
		ts = slices.Insert(ts, i, c.t)
	}
	r.state.tenants = ts
}

// pinInstanceLocked pins an instance unless the lists already hold it at
// least as new, and reports whether it did.
func (r *Registry) pinInstanceLocked(k svcKey, pin instPin) bool {
	if r.coveredLocked(k, pin) {
		return false
	}
	r.state.instPins[k] = pin
	return true
}

// spliceInstances returns a copy of instances (sorted by tenant and ID)
// with each of add replacing the instance of the same tenant and ID, or
// inserted in order.
func spliceInstances(instances, add []registry.Instance) []registry.Instance {
	out := slices.Clone(instances)
	for _, in := range add {
		i, found := slices.BinarySearchFunc(out, in, func(a, b registry.Instance) int {
			if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		if found {
			out[i] = in
		} else {
			out = slices.Insert(out, i, in)
		}
	}
	return out
}

// coveredLocked reports whether the watch's catalog holds instance k at
// least as new as pin: read at or after the pinned service's and checks'
// indexes (the node's part then has it, or the node or service is gone).
func (r *Registry) coveredLocked(_ svcKey, pin instPin) bool {
	c := r.state.src[srcCatalog]
	return c != nil && c.have && c.applied >= max(pin.svc, pin.checks)
}

// coverPinsLocked drops the pinned instances the lists have caught up
// with, and those older than pinMaxAge.
func (r *Registry) coverPinsLocked() {
	for k, pin := range r.state.instPins {
		if r.coveredLocked(k, pin) || time.Since(pin.at) > pinMaxAge {
			delete(r.state.instPins, k)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
