package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// AddHost claims campus/hosts/<host> (check-not-exists) and rewrites the
// tenant's document (check-and-set on the index read) in one /v1/txn, as
// CreateTenant claims hosts: of two tenants adding one host at once,
// exactly one gets it.
func (r *Registry) AddHost(ctx context.Context, tenant, host string) (registry.Tenant, error) {
	for attempt := 0; attempt < 5; attempt++ {
		before, idx, err := r.getTenant(ctx, tenant)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("add host %q to tenant %s: %w", host, tenant, err)
		}
		after, h, changed, err := registry.CheckAddHost(before, host)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("add host %q to tenant %s: %w", host, tenant, err)
		}
		if !changed {
			return before, nil
		}
		if err := r.checkHostClaims(ctx, tenant, h); err != nil {
			return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: %w", h, tenant, err)
		}
		if len(after.Hosts)+1 > maxTxnOps {
			return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: %w", h, tenant,
				invalid("hosts", "a tenant may have at most %d hosts in Consul", maxTxnOps-1))
		}
		val, err := json.Marshal(after)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: encode: %w", h, tenant, err)
		}
		ops := api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.tenantKey(tenant), Value: val, Index: idx}},
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.hostKey(h), Value: []byte(tenant), Index: 0}},
		}
		ok, resp, _, err := r.client.Txn().Txn(ops, qopts(ctx))
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s in consul: %w", h, tenant, err)
		}
		if ok {
			r.log.Info("host added", "tenant", tenant, "host", h)
			return after, nil
		}
		hostFailed := false
		for _, e := range resp.Errors {
			if strings.Contains(e.What, "Permission denied") {
				return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: %s: %w", h, tenant, e.What, ErrPermissionDenied)
			}
			hostFailed = hostFailed || e.OpIndex == 1
		}
		if hostFailed {
			owner, found, err := r.hostOwner(ctx, h)
			if err != nil {
				return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: %w", h, tenant, err)
			}
			if found {
				return registry.Tenant{}, fmt.Errorf("add host %s to tenant %s: %w", h, tenant, &registry.HostTakenError{Host: h, Owner: owner})
			}
		}
		// The tenant changed meanwhile, or the host key came and went: again.
	}
	return registry.Tenant{}, fmt.Errorf("add host %q to tenant %s: %w", host, tenant, registry.ErrConflict)
}

// RemoveHost rewrites the tenant's document without host and deletes the
// host's key (if this tenant owns it) in one /v1/txn.
func (r *Registry) RemoveHost(ctx context.Context, tenant, host string) (registry.Tenant, error) {
	for attempt := 0; attempt < 5; attempt++ {
		before, idx, err := r.getTenant(ctx, tenant)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("remove host %q from tenant %s: %w", host, tenant, err)
		}
		after, h, err := registry.CheckRemoveHost(before, host)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("remove host %q from tenant %s: %w", host, tenant, err)
		}
		val, err := json.Marshal(after)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("remove host %s from tenant %s: encode: %w", h, tenant, err)
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.tenantKey(tenant), Value: val, Index: idx}}}
		hp, _, err := r.client.KV().Get(r.hostKey(h), qopts(ctx))
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("remove host %s from tenant %s: read owner: %w", h, tenant, err)
		}
		if hp != nil && string(hp.Value) == tenant {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: hp.Key, Index: hp.ModifyIndex}})
		}
		ok, resp, _, err := r.client.Txn().Txn(ops, qopts(ctx))
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("remove host %s from tenant %s in consul: %w", h, tenant, err)
		}
		if ok {
			r.log.Info("host removed", "tenant", tenant, "host", h)
			return after, nil
		}
		for _, e := range resp.Errors {
			if strings.Contains(e.What, "Permission denied") {
				return registry.Tenant{}, fmt.Errorf("remove host %s from tenant %s: %s: %w", h, tenant, e.What, ErrPermissionDenied)
			}
		}
	}
	return registry.Tenant{}, fmt.Errorf("remove host %q from tenant %s: %w", host, tenant, registry.ErrConflict)
}

// checkHostClaims applies registry.CheckHostClaim to each of hosts, from
// one read of every claimed host. Equal hosts are also refused atomically
// by the transaction's check-not-exists; nesting is checked here, just
// before the transaction, so two schools claiming nested names in the
// same instant could both succeed (a window of one round trip; see the
// isolation table of docs/ARCHITECTURE.md).
func (r *Registry) checkHostClaims(ctx context.Context, tenant string, hosts ...string) error {
	pairs, _, err := r.client.KV().List(r.hostsPrefix, qopts(ctx))
	if err != nil {
		return fmt.Errorf("read claimed hosts from consul: %w", err)
	}
	claimed := make([]registry.HostOwner, 0, len(pairs))
	for _, p := range pairs {
		claimed = append(claimed, registry.HostOwner{Host: strings.TrimPrefix(p.Key, r.hostsPrefix), Tenant: string(p.Value)})
	}
	for _, h := range hosts {
		if err := registry.CheckHostClaim(h, tenant, claimed); err != nil {
			return err
		}
	}
	return nil
}
