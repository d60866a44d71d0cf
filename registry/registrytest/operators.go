package registrytest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Operator tokens and the audit trail (issue 26).

func operators(t *testing.T, r registry.Registry) registry.Operators {
	t.Helper()
	ops, ok := r.(registry.Operators)
	if !ok {
		t.Fatalf("%T does not implement registry.Operators", r)
	}
	return ops
}

func testOperatorTokens(t *testing.T, e *env) {
	ctx := e.ctx()
	ops, ops2 := operators(t, e.r), operators(t, e.r2)
	name := e.name("op")
	token, rec, err := registry.NewOperatorToken(name, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.RevokeOperatorToken(ctx, rec.ID) })
	created, err := ops.CreateOperatorToken(ctx, rec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.CreatedAt.IsZero() || created.Revoked() || !created.ReadOnly {
		t.Errorf("created %+v", created)
	}
	got, err := ops2.OperatorToken(ctx, rec.ID)
	if err != nil || got.Name != name || !got.Matches(token) || got.Matches(token+"x") {
		t.Fatalf("second handle reads %+v, %v (matches its token: %v)", got, err, got.Matches(token))
	}
	if id, ok := registry.OperatorTokenID(token); !ok || id != rec.ID {
		t.Errorf("OperatorTokenID(token) = %q, %v; want %q", id, ok, rec.ID)
	}
	if got.Hash == "" || got.Hash == token {
		t.Errorf("stored hash %q", got.Hash)
	}

	// A second live token of the name is refused, from either handle.
	_, other, _ := registry.NewOperatorToken(name, false)
	if _, err := ops2.CreateOperatorToken(ctx, other); !errors.Is(err, registry.ErrExists) {
		t.Errorf("second token named %s: %v, want ErrExists", name, err)
	}

	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := ops.TouchOperatorToken(ctx, rec.ID, at); err != nil {
		t.Fatal(err)
	}
	all, err := ops2.OperatorTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed *registry.OperatorToken
	for i := range all {
		if all[i].ID == rec.ID {
			listed = &all[i]
		}
	}
	if listed == nil || !listed.LastUsed.Equal(at) {
		t.Fatalf("listed %+v, want last use %s", listed, at)
	}

	revoked, err := ops2.RevokeOperatorToken(ctx, name)
	if err != nil || !revoked.Revoked() || revoked.ID != rec.ID {
		t.Fatalf("revoke: %+v, %v", revoked, err)
	}
	if got, err := ops.OperatorToken(ctx, rec.ID); err != nil || !got.Revoked() {
		t.Errorf("after revoke: %+v, %v", got, err)
	}
	if _, err := ops.RevokeOperatorToken(ctx, name); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("revoke again: %v, want ErrNotFound", err)
	}
	// The name is free again; the revoked record stays listed.
	if _, err := ops.CreateOperatorToken(ctx, other); err != nil {
		t.Fatalf("new token under a revoked name: %v", err)
	}
	t.Cleanup(func() { ops.RevokeOperatorToken(ctx, other.ID) })
	if _, err := ops.RevokeOperatorToken(ctx, other.ID); err != nil {
		t.Errorf("revoke by ID: %v", err)
	}
	if _, err := ops.OperatorToken(ctx, "0123456789abcdef"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown ID: %v, want ErrNotFound", err)
	}
	if _, err := ops.CreateOperatorToken(ctx, registry.OperatorToken{ID: "x", Name: "Bad Name"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("invalid record: %v, want ErrInvalid", err)
	}
}

func testOperatorTokenRace(t *testing.T, e *env) {
	ctx := e.ctx()
	name := e.name("race")
	ops, ops2 := operators(t, e.r), operators(t, e.r2)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, rec, _ := registry.NewOperatorToken(name, false)
			o := ops
			if i%2 == 1 {
				o = ops2
			}
			var created registry.OperatorToken
			created, errs[i] = o.CreateOperatorToken(ctx, rec)
			if errs[i] == nil {
				t.Cleanup(func() { ops.RevokeOperatorToken(ctx, created.ID) })
			}
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, registry.ErrExists):
			t.Errorf("loser: %v, want ErrExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of %s won, want 1", won, name)
	}
}

func testAudit(t *testing.T, e *env) {
	ctx := e.ctx()
	ops, ops2 := operators(t, e.r), operators(t, e.r2)
	target := e.name("audited")
	var ids []string
	for i := range 5 {
		en, err := ops.AppendAudit(ctx, registry.AuditEntry{TokenID: "0123456789abcdef", Operator: "alice",
			Action: fmt.Sprintf("schools.step%d", i), Target: target, Outcome: registry.OutcomeOK, Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		if en.ID == "" || en.At.IsZero() {
			t.Fatalf("entry without ID or time: %+v", en)
		}
		ids = append(ids, en.ID)
	}
	if _, err := ops.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.list", Outcome: registry.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.AppendAudit(ctx, registry.AuditEntry{Operator: "alice"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("entry without action: %v, want ErrInvalid", err)
	}
	got, err := ops2.Audit(ctx, registry.AuditQuery{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d entries of %s, want 5: %+v", len(got), target, got)
	}
	for i, en := range got { // newest first
		if want := fmt.Sprintf("schools.step%d", 4-i); en.Action != want || en.Operator != "alice" || en.Status != 200 || en.Outcome != registry.OutcomeOK {
			t.Errorf("entry %d: %+v, want action %s", i, en, want)
		}
	}
	page, err := ops2.Audit(ctx, registry.AuditQuery{Target: target, Before: ids[3], Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
		t.Errorf("page before %s: %+v, want entries %s, %s", ids[3], page, ids[2], ids[1])
	}
	keyed, err := ops.AppendAudit(ctx, registry.AuditEntry{TokenID: "fedcba9876543210", Operator: "bob", Action: "schools.create",
		Target: target, Outcome: registry.OutcomeOK, Status: 201, IdempotencyKey: "key-" + target, SchoolID: "0123"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []registry.AuditQuery{
		{TokenID: "fedcba9876543210", IdempotencyKey: "key-" + target},
		{IdempotencyKey: "key-" + target},
	} {
		got, err := ops2.Audit(ctx, q)
		if err != nil || len(got) != 1 || got[0].ID != keyed.ID || got[0].SchoolID != "0123" || got[0].IdempotencyKey != "key-"+target {
			t.Errorf("audit %+v: %+v, %v; want the keyed entry", q, got, err)
		}
	}
	if got, err := ops2.Audit(ctx, registry.AuditQuery{TokenID: "0123456789abcdef", IdempotencyKey: "key-" + target}); err != nil || len(got) != 0 {
		t.Errorf("another token's key: %+v, %v; want none", got, err)
	}
	recent, err := ops2.Audit(ctx, registry.AuditQuery{Limit: 3})
	if err != nil || len(recent) != 3 {
		t.Fatalf("latest 3: %d, %v", len(recent), err)
	}
}

// testAuditPrune: PruneAudit deletes the entries older than its time (on
// every handle), keeps the others, and deleting again finds nothing.
func testAuditPrune(t *testing.T, e *env) {
	ctx := e.ctx()
	ops, ops2 := operators(t, e.r), operators(t, e.r2)
	target := e.name("pruned")
	long := time.Now().Add(-3 * 365 * 24 * time.Hour)
	for i := range 3 {
		if _, err := ops.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.old", Target: target,
			Outcome: registry.OutcomeOK, At: long.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	recent, err := ops.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.new", Target: target, Outcome: registry.OutcomeOK})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ops2.PruneAudit(ctx, time.Now().Add(-2*365*24*time.Hour))
	if err != nil || n < 3 {
		t.Fatalf("prune: %d, %v; want at least the 3 old entries", n, err)
	}
	got, err := ops.Audit(ctx, registry.AuditQuery{Target: target})
	if err != nil || len(got) != 1 || got[0].ID != recent.ID {
		t.Fatalf("after the prune: %+v, %v; want only the recent entry", got, err)
	}
	if n, err := ops.PruneAudit(ctx, time.Now().Add(-2*365*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("prune again: %d, %v; want 0", n, err)
	}
}
