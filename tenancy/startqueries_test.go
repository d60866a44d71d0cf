package tenancy_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// startStore is the store of t's database as a starting app has it: a
// client of its own, whose commands are recorded.
func startStore(tb *testing.T, t registry.Tenant) (*store.Store, *mongotest.Commands) {
	tb.Helper()
	client, cmds := mongotest.RecordingClient(tb)
	return store.New(client.Database(t.Database), store.Options{}), cmds
}

// TestStartOfCurrentDatabase: an app start (with --migrate, as the
// supervisor starts apps) of a school's current database reads a few
// documents and writes nothing, once one start has migrated it; a record
// of another tenant naming that database (a school re-created under the
// name: another ID) is refused, with or without --migrate, before and
// after, and the database is left as it was.
func TestStartOfCurrentDatabase(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	a := w.create(w.name())
	log := slog.New(slog.DiscardHandler)

	st, c := startStore(t, a)
	if err := tenancy.CheckServed(ctx, st, a, true, log); err != nil {
		t.Fatalf("first start: %v", err)
	}
	for i := range 2 {
		st, c = startStore(t, a)
		if err := tenancy.CheckServed(ctx, st, a, true, log); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		// The stamp, the schema version, and the server's kind (once per
		// process).
		if cmds := c.Take(); len(cmds) > 3 || slices.ContainsFunc(cmds, func(n string) bool { return n != "find" && n != "buildInfo" }) {
			t.Errorf("start %d of a current database sent %v", i, cmds)
		}
	}

	other := a
	other.ID = registry.NewID()
	for _, migrate := range []bool{true, false} {
		st, c := startStore(t, other)
		err := tenancy.CheckServed(ctx, st, other, migrate, log)
		if !errors.Is(err, store.ErrWrongTenant) {
			t.Errorf("start of another tenant's database (migrate %v): %v, want ErrWrongTenant", migrate, err)
		}
		if mongotest.Writes(c.Take()) {
			t.Errorf("a refused start (migrate %v) wrote", migrate)
		}
	}
	if id, err := w.store(a).TenantID(ctx); err != nil || id != a.ID {
		t.Errorf("stamp %q, %v after the refused starts; want %s", id, err, a.ID)
	}
	st, c = startStore(t, a)
	if err := tenancy.CheckServed(ctx, st, a, true, log); err != nil {
		t.Errorf("start after the refused ones: %v", err)
	}
	if mongotest.Writes(c.Take()) {
		t.Error("the start after the refused ones wrote")
	}
}
