package control_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/campus-saas/campus/control"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// TestServerPrunesAuditTrail: a running control server deletes the audit
// entries older than its AuditKeep and keeps the others.
func TestServerPrunesAuditTrail(t *testing.T) {
	t.Parallel()
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ctx := t.Context()
	old, err := reg.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.create", Target: "lagos",
		Outcome: registry.OutcomeOK, At: time.Now().Add(-40 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := reg.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.suspend", Target: "lagos",
		Outcome: registry.OutcomeOK, At: time.Now().Add(-20 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s := &control.Server{Registry: reg, Logger: slog.New(slog.DiscardHandler), AuditKeep: 30 * 24 * time.Hour}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- control.Serve(sctx, s, control.ServeConfig{Listen: "127.0.0.1:0", Ready: func(net.Addr) {}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var got []registry.AuditEntry
	if err := systemtest.Eventually(30*time.Second, func() error {
		if got, err = reg.Audit(ctx, registry.AuditQuery{Target: "lagos"}); err != nil {
			return err
		}
		if len(got) != 1 {
			return errors.New("not pruned yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("audit of lagos: %+v (%v); want only %s, not %s (older than 30 days)", got, err, kept.ID, old.ID)
	}
	if got[0].ID != kept.ID {
		t.Fatalf("kept %s, want %s", got[0].ID, kept.ID)
	}
}
