package tenancy_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// commands records the names of the commands a client sends.
type commands struct {
	mu    sync.Mutex
	names []string
}

func (c *commands) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.names
	c.names = nil
	return out
}

func (c *commands) wrote() bool {
	return slices.ContainsFunc(c.take(), func(n string) bool {
		return slices.Contains([]string{"insert", "update", "delete", "findAndModify", "create", "createIndexes", "drop"}, n)
	})
}

// startStore is the store of t's database as a starting app has it: a
// client of its own, whose commands are recorded.
func startStore(tb *testing.T, t registry.Tenant) (*store.Store, *commands) {
	tb.Helper()
	c := &commands{}
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		c.names = append(c.names, e.CommandName)
		c.mu.Unlock()
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(mongotest.URI(tb)).SetMonitor(mon))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Disconnect(context.Background()) })
	return store.New(client.Database(t.Database), store.Options{}), c
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
		// The stamp twice (the empty check, then the migration), the
		// schema version, and the server's kind (once per process).
		if cmds := c.take(); len(cmds) > 4 || slices.ContainsFunc(cmds, func(n string) bool { return n != "find" && n != "buildInfo" }) {
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
		if c.wrote() {
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
	if c.wrote() {
		t.Error("the start after the refused ones wrote")
	}
}
