package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Operator tokens and the audit trail (issue 26) are not cached: they are
// read and written through to the backend, like every write.

var _ registry.Operators = (*Registry)(nil)

func (r *Registry) ops() (registry.Operators, error) {
	o, ok := r.Registry.(registry.Operators)
	if !ok {
		return nil, fmt.Errorf("the %T registry keeps no operator tokens", r.Registry)
	}
	return o, nil
}

// CreateOperatorToken implements registry.Operators.
func (r *Registry) CreateOperatorToken(ctx context.Context, o registry.OperatorToken) (registry.OperatorToken, error) {
	ops, err := r.ops()
	if err != nil {
		return registry.OperatorToken{}, err
	}
	return ops.CreateOperatorToken(ctx, o)
}

// OperatorToken implements registry.Operators.
func (r *Registry) OperatorToken(ctx context.Context, id string) (registry.OperatorToken, error) {
	ops, err := r.ops()
	if err != nil {
		return registry.OperatorToken{}, err
	}
	return ops.OperatorToken(ctx, id)
}

// OperatorTokens implements registry.Operators.
func (r *Registry) OperatorTokens(ctx context.Context) ([]registry.OperatorToken, error) {
	ops, err := r.ops()
	if err != nil {
		return nil, err
	}
	return ops.OperatorTokens(ctx)
}

// RevokeOperatorToken implements registry.Operators.
func (r *Registry) RevokeOperatorToken(ctx context.Context, name string) (registry.OperatorToken, error) {
	ops, err := r.ops()
	if err != nil {
		return registry.OperatorToken{}, err
	}
	return ops.RevokeOperatorToken(ctx, name)
}

// TouchOperatorToken implements registry.Operators.
func (r *Registry) TouchOperatorToken(ctx context.Context, id string, at time.Time) error {
	ops, err := r.ops()
	if err != nil {
		return err
	}
	return ops.TouchOperatorToken(ctx, id, at)
}

// AppendAudit implements registry.Operators.
func (r *Registry) AppendAudit(ctx context.Context, e registry.AuditEntry) (registry.AuditEntry, error) {
	ops, err := r.ops()
	if err != nil {
		return e, err
	}
	return ops.AppendAudit(ctx, e)
}

// PruneAudit implements registry.Operators.
func (r *Registry) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	ops, err := r.ops()
	if err != nil {
		return 0, err
	}
	return ops.PruneAudit(ctx, before)
}

// Audit implements registry.Operators.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEntry, error) {
	ops, err := r.ops()
	if err != nil {
		return nil, err
	}
	return ops.Audit(ctx, q)
}
