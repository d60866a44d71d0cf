package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Operator tokens and the audit trail (issue 26): two tables outside the
// snapshot (schema 6). Their writes are single statements in autocommit,
// without the version bump of write: nothing a proxy or supervisor reads
// changes.

var _ registry.Operators = (*Registry)(nil)

func (r *Registry) open() error {
	select {
	case <-r.done:
		return errClosed
	default:
		return nil
	}
}

// CreateOperatorToken implements registry.Operators.
func (r *Registry) CreateOperatorToken(ctx context.Context, o registry.OperatorToken) (registry.OperatorToken, error) {
	if err := o.Validate(); err != nil {
		return registry.OperatorToken{}, fmt.Errorf("create operator token: %w", err)
	}
	if err := r.open(); err != nil {
		return registry.OperatorToken{}, err
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now().UTC()
	}
	o.LastUsed, o.RevokedAt = time.Time{}, time.Time{}
	_, err := r.wdb.ExecContext(ctx, `INSERT INTO operator_tokens (id, name, read_only, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		o.ID, o.Name, o.ReadOnly, o.Hash, o.CreatedAt.UnixNano())
	if isUniqueViolation(err) {
		return registry.OperatorToken{}, fmt.Errorf("create operator token %q: a live token has this name: %w", o.Name, registry.ErrExists)
	}
	if err != nil {
		return registry.OperatorToken{}, fmt.Errorf("create operator token %q: %w", o.Name, r.dbErr(ctx, "insert", err))
	}
	return o, nil
}

const operatorColumns = `id, name, read_only, hash, created_at, last_used, revoked_at`

func scanOperator(row interface{ Scan(...any) error }) (registry.OperatorToken, error) {
	var (
		o                      registry.OperatorToken
		created, used, revoked int64
	)
	if err := row.Scan(&o.ID, &o.Name, &o.ReadOnly, &o.Hash, &created, &used, &revoked); err != nil {
		return o, err
	}
	o.CreatedAt, o.LastUsed, o.RevokedAt = fromNanos(created), fromNanos(used), fromNanos(revoked)
	return o, nil
}

// OperatorToken implements registry.Operators.
func (r *Registry) OperatorToken(ctx context.Context, id string) (registry.OperatorToken, error) {
	o, err := scanOperator(r.rdb.QueryRowContext(ctx, `SELECT `+operatorColumns+` FROM operator_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("operator token %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("operator token %s: %w", id, r.dbErr(ctx, "read", err))
	}
	return o, nil
}

// OperatorTokens implements registry.Operators.
func (r *Registry) OperatorTokens(ctx context.Context) ([]registry.OperatorToken, error) {
	rows, err := r.rdb.QueryContext(ctx, `SELECT `+operatorColumns+` FROM operator_tokens ORDER BY name, created_at`)
	if err != nil {
		return nil, fmt.Errorf("list operator tokens: %w", r.dbErr(ctx, "read", err))
	}
	defer rows.Close()
	var out []registry.OperatorToken
	for rows.Next() {
		o, err := scanOperator(rows)
		if err != nil {
			return nil, fmt.Errorf("list operator tokens: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// RevokeOperatorToken implements registry.Operators.
func (r *Registry) RevokeOperatorToken(ctx context.Context, name string) (registry.OperatorToken, error) {
	if err := r.open(); err != nil {
		return registry.OperatorToken{}, err
	}
	o, err := scanOperator(r.wdb.QueryRowContext(ctx, `UPDATE operator_tokens SET revoked_at = ?
		WHERE revoked_at = 0 AND (name = ? OR id = ?) RETURNING `+operatorColumns, time.Now().UnixNano(), name, name))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("revoke operator token %q: no live token of that name or ID: %w", name, registry.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("revoke operator token %q: %w", name, r.dbErr(ctx, "update", err))
	}
	return o, nil
}

// TouchOperatorToken implements registry.Operators.
func (r *Registry) TouchOperatorToken(ctx context.Context, id string, at time.Time) error {
	if err := r.open(); err != nil {
		return err
	}
	if _, err := r.wdb.ExecContext(ctx, `UPDATE operator_tokens SET last_used = max(last_used, ?) WHERE id = ?`, at.UnixNano(), id); err != nil {
		return fmt.Errorf("operator token %s: record its use: %w", id, r.dbErr(ctx, "update", err))
	}
	return nil
}

// AppendAudit implements registry.Operators.
func (r *Registry) AppendAudit(ctx context.Context, e registry.AuditEntry) (registry.AuditEntry, error) {
	e, err := registry.PrepareAudit(e)
	if err != nil {
		return e, err
	}
	if err := r.open(); err != nil {
		return e, err
	}
	_, err = r.wdb.ExecContext(ctx, `INSERT INTO audit (id, at, token_id, operator, action, target, outcome, status, detail, idempotency_key, school_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.At.UnixNano(), e.TokenID, e.Operator, e.Action, e.Target, e.Outcome, e.Status, e.Detail,
		e.IdempotencyKey, e.SchoolID)
	if err != nil {
		return e, fmt.Errorf("write audit entry: %w", r.dbErr(ctx, "insert", err))
	}
	return e, nil
}

// PruneAudit implements registry.Operators.
func (r *Registry) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	if err := r.open(); err != nil {
		return 0, err
	}
	res, err := r.wdb.ExecContext(ctx, `DELETE FROM audit WHERE id < ?`, registry.AuditCut(before))
	if err != nil {
		return 0, fmt.Errorf("prune audit trail: %w", r.dbErr(ctx, "delete", err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Audit implements registry.Operators.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEntry, error) {
	where, args := `WHERE 1`, []any{}
	if q.Target != "" {
		where, args = where+` AND target = ?`, append(args, q.Target)
	}
	if q.Before != "" {
		where, args = where+` AND id < ?`, append(args, q.Before)
	}
	if q.TokenID != "" {
		where, args = where+` AND token_id = ?`, append(args, q.TokenID)
	}
	if q.IdempotencyKey != "" {
		where, args = where+` AND idempotency_key = ?`, append(args, q.IdempotencyKey)
	}
	rows, err := r.rdb.QueryContext(ctx, `SELECT id, at, token_id, operator, action, target, outcome, status, detail, idempotency_key, school_id FROM audit `+
		where+` ORDER BY id DESC LIMIT ?`, append(args, q.PageLimit())...)
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", r.dbErr(ctx, "read", err))
	}
	defer rows.Close()
	var out []registry.AuditEntry
	for rows.Next() {
		var (
			e  registry.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.TokenID, &e.Operator, &e.Action, &e.Target, &e.Outcome, &e.Status, &e.Detail, &e.IdempotencyKey, &e.SchoolID); err != nil {
			return nil, fmt.Errorf("read audit trail: %w", err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
