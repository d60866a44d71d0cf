package control

import (
	"context"
	"time"
)

// DefaultAuditKeep is Server.AuditKeep's default: a year of the audit
// trail is kept.
const DefaultAuditKeep = 365 * 24 * time.Hour

// auditPruneInterval is how often the server deletes the entries older
// than AuditKeep.
const auditPruneInterval = time.Hour

// pruneAudit deletes the audit entries older than s.AuditKeep at once and
// then every auditPruneInterval until ctx ends (one control server or
// several: a prune finding nothing deletes nothing).
func (s *Server) pruneAudit(ctx context.Context) {
	keep := s.AuditKeep
	if keep <= 0 {
		keep = DefaultAuditKeep
	}
	t := time.NewTicker(auditPruneInterval)
	defer t.Stop()
	for {
		n, err := s.Registry.PruneAudit(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger().Warn("prune the audit trail", "err", err)
		case n > 0:
			s.logger().Info("audit trail pruned", "deleted", n, "older_than", keep.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
