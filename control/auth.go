package control

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry"
)

var errUnauthorized = errors.New("not a live operator token")

// touchEvery bounds how often a token's last use is written.
const touchEvery = time.Minute

// authenticate returns the live operator token that token is. The record
// is read on every request, so that a revoked token is refused from the
// next request on, on every control server.
func (s *Server) authenticate(ctx context.Context, token string) (registry.OperatorToken, error) {
	id, ok := registry.OperatorTokenID(token)
	if !ok {
		return registry.OperatorToken{}, errUnauthorized
	}
	op, err := s.Registry.OperatorToken(ctx, id)
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) {
			s.logger().Error("control: read operator token", "id", id, "err", err)
		}
		return registry.OperatorToken{}, errUnauthorized
	}
	if op.Revoked() || !op.Matches(token) {
		return registry.OperatorToken{}, errUnauthorized
	}
	now := time.Now().UTC()
	last := op.LastUsed
	if v, ok := s.touched.Load(op.ID); ok && v.(time.Time).After(last) {
		last = v.(time.Time)
	}
	if now.Sub(last) >= touchEvery {
		s.touched.Store(op.ID, now)
		if err := s.Registry.TouchOperatorToken(ctx, op.ID, now); err != nil {
			s.logger().Warn("control: record an operator token's use", "id", op.ID, "err", err)
		}
	}
	return op, nil
}

// bearer is the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
