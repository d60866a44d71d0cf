package consul

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// Scale to zero (issue 12). The idle-timeout override is a field of the
// tenant's JSON document. Wake requests are KV keys <prefix>wake/<tenant>
// holding the time of the request; the proxy token may write them (and
// nothing else of the registry, see ProxyRules), a tenant's token may not.
// The tenants watch lists <prefix>tenants/ only, so a wake never moves the
// snapshot version; WatchWakes is a blocking query on <prefix>wake/.

// wakeWait bounds one blocking query of WatchWakes.
const wakeWait = 5 * time.Minute

func (r *Registry) wakePrefix() string { return r.cfg.Prefix + "wake/" }

// SetIdleTimeout implements registry.Registry.
func (r *Registry) SetIdleTimeout(ctx context.Context, name, idle string) (registry.Tenant, error) {
	return r.update(ctx, name, "set idle timeout of", func(t registry.Tenant) (registry.Tenant, error) {
		return registry.CheckSetIdleTimeout(t, idle)
	})
}

// RequestWake implements registry.Registry.
func (r *Registry) RequestWake(ctx context.Context, tenant string) error {
	if err := registry.ValidateName(tenant); err != nil {
		return fmt.Errorf("wake tenant: %w", err)
	}
	p := &api.KVPair{Key: r.wakePrefix() + tenant, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))}
	if _, err := r.client.KV().Put(p, wopts(ctx)); err != nil {
		return fmt.Errorf("wake tenant %s in consul: %w", tenant, err)
	}
	return nil
}

// WatchWakes implements registry.Registry. The cursor is Consul's index
// of the wake prefix.
func (r *Registry) WatchWakes(ctx context.Context, after uint64) ([]registry.Wake, uint64, error) {
	for {
		q := qopts(ctx)
		if after > 0 {
			q.WaitIndex, q.WaitTime = after, wakeWait
		}
		pairs, meta, err := r.client.KV().List(r.wakePrefix(), q)
		if err != nil {
			if ctx.Err() != nil {
				return nil, after, ctx.Err()
			}
			return nil, after, fmt.Errorf("watch wakes in consul: %w", err)
		}
		index := max(meta.LastIndex, 1)
		if after == 0 {
			return nil, index, nil
		}
		if index < after { // the index went back (a restored snapshot): start again
			after = 0
		}
		var out []registry.Wake
		for _, p := range pairs {
			if p.ModifyIndex <= after {
				continue
			}
			name := strings.TrimPrefix(p.Key, r.wakePrefix())
			if registry.ValidateName(name) != nil {
				continue
			}
			w := registry.Wake{Tenant: name, Seq: p.ModifyIndex}
			w.At, _ = time.Parse(time.RFC3339Nano, string(p.Value))
			out = append(out, w)
		}
		if len(out) > 0 || after == 0 {
			return out, index, nil
		}
		after = index
	}
}
