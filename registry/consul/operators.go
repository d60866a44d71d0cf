package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// Operator tokens and the audit trail (issue 26), in KV beside the
// tenants and outside what the watcher follows (<prefix>tenants/), so that
// they never move the snapshot version:
//
//	<prefix>operators/tokens/<id>   the record (JSON; the token's SHA-256, never the token)
//	<prefix>operators/names/<name>  the ID of the live token of that name
//	<prefix>audit/<entry id>        one entry (JSON); IDs sort by time
//
// Only the operator's Consul token reads and writes them (the control
// server acts with the token it was started with, never with anything a
// caller sends); the proxies' and readers' tokens are denied both prefixes
// (ProxyRules), and a tenant's token reads only its own tenant key.

var _ registry.Operators = (*Registry)(nil)

func (r *Registry) operatorsPrefix() string         { return r.cfg.Prefix + "operators/" }
func (r *Registry) operatorKey(id string) string    { return r.operatorsPrefix() + "tokens/" + id }
func (r *Registry) operatorName(name string) string { return r.operatorsPrefix() + "names/" + name }
func (r *Registry) auditPrefix() string             { return r.cfg.Prefix + "audit/" }

// CreateOperatorToken implements registry.Operators: the record and its
// name key in one transaction, both only if absent.
func (r *Registry) CreateOperatorToken(ctx context.Context, o registry.OperatorToken) (registry.OperatorToken, error) {
	if err := o.Validate(); err != nil {
		return registry.OperatorToken{}, fmt.Errorf("create operator token: %w", err)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now().UTC()
	}
	o.LastUsed, o.RevokedAt = time.Time{}, time.Time{}
	val, err := json.Marshal(o)
	if err != nil {
		return registry.OperatorToken{}, fmt.Errorf("create operator token: encode: %w", err)
	}
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.operatorName(o.Name), Value: []byte(o.ID), Index: 0}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.operatorKey(o.ID), Value: val, Index: 0}},
	}
	ok, resp, _, err := r.client.Txn().Txn(ops, qopts(ctx))
	if err != nil {
		return registry.OperatorToken{}, fmt.Errorf("create operator token %q in consul: %w", o.Name, err)
	}
	if !ok {
		for _, e := range resp.Errors {
			if strings.Contains(e.What, "Permission denied") {
				return registry.OperatorToken{}, fmt.Errorf("create operator token %q: %s: %w", o.Name, e.What, ErrPermissionDenied)
			}
			if e.OpIndex == 0 {
				return registry.OperatorToken{}, fmt.Errorf("create operator token %q: a live token has this name: %w", o.Name, registry.ErrExists)
			}
		}
		return registry.OperatorToken{}, fmt.Errorf("create operator token %q: %w", o.Name, registry.ErrConflict)
	}
	return o, nil
}

func (r *Registry) getOperator(ctx context.Context, id string) (registry.OperatorToken, uint64, error) {
	if strings.ContainsAny(id, "/.") || id == "" {
		return registry.OperatorToken{}, 0, fmt.Errorf("operator token %q: %w", id, registry.ErrNotFound)
	}
	p, _, err := r.client.KV().Get(r.operatorKey(id), qopts(ctx))
	if err != nil {
		return registry.OperatorToken{}, 0, fmt.Errorf("read operator token %s from consul: %w", id, err)
	}
	if p == nil {
		return registry.OperatorToken{}, 0, fmt.Errorf("operator token %s: %w", id, registry.ErrNotFound)
	}
	var o registry.OperatorToken
	if err := json.Unmarshal(p.Value, &o); err != nil {
		return o, 0, fmt.Errorf("operator token %s: decode: %w", id, err)
	}
	return o, p.ModifyIndex, nil
}

// OperatorToken implements registry.Operators.
func (r *Registry) OperatorToken(ctx context.Context, id string) (registry.OperatorToken, error) {
	o, _, err := r.getOperator(ctx, id)
	return o, err
}

// OperatorTokens implements registry.Operators.
func (r *Registry) OperatorTokens(ctx context.Context) ([]registry.OperatorToken, error) {
	pairs, _, err := r.client.KV().List(r.cfg.Prefix+"operators/tokens/", qopts(ctx))
	if err != nil {
		return nil, fmt.Errorf("list operator tokens in consul: %w", err)
	}
	out := make([]registry.OperatorToken, 0, len(pairs))
	for _, p := range pairs {
		var o registry.OperatorToken
		if err := json.Unmarshal(p.Value, &o); err != nil {
			return nil, fmt.Errorf("operator token %s: decode: %w", p.Key, err)
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b registry.OperatorToken) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	return out, nil
}

// RevokeOperatorToken implements registry.Operators: the record marked
// revoked and the name released, in one check-and-set transaction.
func (r *Registry) RevokeOperatorToken(ctx context.Context, name string) (registry.OperatorToken, error) {
	for attempt := 0; attempt < 5; attempt++ {
		id := name
		var nameIndex uint64
		if registry.ValidateOperatorName(name) == nil {
			p, _, err := r.client.KV().Get(r.operatorName(name), qopts(ctx))
			if err != nil {
				return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q: %w", name, err)
			}
			if p != nil {
				id, nameIndex = string(p.Value), p.ModifyIndex
			}
		}
		o, index, err := r.getOperator(ctx, id)
		if err != nil || o.Revoked() {
			return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q: no live token of that name or ID: %w", name, registry.ErrNotFound)
		}
		o.RevokedAt = time.Now().UTC()
		val, err := json.Marshal(o)
		if err != nil {
			return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q: encode: %w", name, err)
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.operatorKey(o.ID), Value: val, Index: index}}}
		if nameIndex > 0 {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: r.operatorName(o.Name), Index: nameIndex}})
		} else {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: r.operatorName(o.Name)}})
		}
		ok, resp, _, err := r.client.Txn().Txn(ops, qopts(ctx))
		if err != nil {
			return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q in consul: %w", name, err)
		}
		if ok {
			return o, nil
		}
		for _, e := range resp.Errors {
			if strings.Contains(e.What, "Permission denied") {
				return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q: %s: %w", name, e.What, ErrPermissionDenied)
			}
		}
	}
	return registry.OperatorToken{}, fmt.Errorf("revoke operator token %q: %w", name, registry.ErrConflict)
}

// TouchOperatorToken implements registry.Operators. A concurrent change
// wins: the use is recorded by the next call.
func (r *Registry) TouchOperatorToken(ctx context.Context, id string, at time.Time) error {
	o, index, err := r.getOperator(ctx, id)
	if err != nil {
		return err
	}
	if !at.After(o.LastUsed) {
		return nil
	}
	o.LastUsed = at.UTC()
	val, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("operator token %s: encode: %w", id, err)
	}
	if _, _, err := r.client.KV().CAS(&api.KVPair{Key: r.operatorKey(id), Value: val, ModifyIndex: index}, wopts(ctx)); err != nil {
		return fmt.Errorf("operator token %s: record its use in consul: %w", id, err)
	}
	return nil
}

// AppendAudit implements registry.Operators.
func (r *Registry) AppendAudit(ctx context.Context, e registry.AuditEntry) (registry.AuditEntry, error) {
	e, err := registry.PrepareAudit(e)
	if err != nil {
		return e, err
	}
	val, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("write audit entry: encode: %w", err)
	}
	if _, err := r.client.KV().Put(&api.KVPair{Key: r.auditPrefix() + e.ID, Value: val}, wopts(ctx)); err != nil {
		return e, fmt.Errorf("write audit entry to consul: %w", err)
	}
	return e, nil
}

// PruneAudit implements registry.Operators: the keys are listed (sorted
// by time) and the older ones deleted one by one.
func (r *Registry) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	keys, _, err := r.client.KV().Keys(r.auditPrefix(), "", qopts(ctx))
	if err != nil {
		return 0, fmt.Errorf("prune audit trail in consul: %w", err)
	}
	cut, n := registry.AuditCut(before), 0
	for _, k := range keys {
		if strings.TrimPrefix(k, r.auditPrefix()) >= cut {
			continue
		}
		if _, err := r.client.KV().Delete(k, wopts(ctx)); err != nil {
			return n, fmt.Errorf("prune audit trail in consul: %w", err)
		}
		n++
	}
	return n, nil
}

// Audit implements registry.Operators. Consul has no index on the
// entries' fields: without a filter (target, token, key) it lists the
// keys (sorted by time) and reads the newest until the page is full; with
// one it reads every entry in one list.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEntry, error) {
	var out []registry.AuditEntry
	add := func(id string, value []byte) error {
		var e registry.AuditEntry
		if err := json.Unmarshal(value, &e); err != nil {
			return fmt.Errorf("audit entry %s: decode: %w", id, err)
		}
		if q.Matches(e) {
			out = append(out, e)
		}
		return nil
	}
	if q.Target != "" || q.IdempotencyKey != "" || q.TokenID != "" {
		pairs, _, err := r.client.KV().List(r.auditPrefix(), qopts(ctx))
		if err != nil {
			return nil, fmt.Errorf("read audit trail from consul: %w", err)
		}
		slices.SortFunc(pairs, func(a, b *api.KVPair) int { return strings.Compare(b.Key, a.Key) })
		for _, p := range pairs {
			if len(out) == q.PageLimit() {
				break
			}
			if err := add(p.Key, p.Value); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	keys, _, err := r.client.KV().Keys(r.auditPrefix(), "", qopts(ctx))
	if err != nil {
		return nil, fmt.Errorf("read audit trail from consul: %w", err)
	}
	slices.Sort(keys)
	for i := len(keys) - 1; i >= 0 && len(out) < q.PageLimit(); i-- {
		id := strings.TrimPrefix(keys[i], r.auditPrefix())
		if q.Before != "" && id >= q.Before {
			continue
		}
		p, _, err := r.client.KV().Get(keys[i], qopts(ctx))
		if err != nil {
			return nil, fmt.Errorf("read audit entry %s from consul: %w", id, err)
		}
		if p != nil {
			if err := add(id, p.Value); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
