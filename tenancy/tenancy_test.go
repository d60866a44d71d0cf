package tenancy_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

const password = "long-enough-pw"

// world is one registry (embedded, in a temporary folder) and the test
// database server, with a Manager over them; every test has its own, so
// they run in parallel.
type world struct {
	t   *testing.T
	m   *tenancy.Manager
	reg *embedded.Registry
	now time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	t.Parallel()
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w := &world{t: t, reg: reg, now: time.Now().UTC().Truncate(time.Second)}
	w.m = &tenancy.Manager{Registry: reg, Database: tenancy.DatabaseAddress{URI: mongotest.URI(t)}, Now: func() time.Time { return w.now }}
	return w
}

// name is a tenant name no other test uses (its database is on the shared
// server); its database is dropped when the test ends.
func (w *world) name() string {
	n := "s" + strings.TrimPrefix(mongotest.NewName(w.t), "t_")[:12]
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mongotest.Client(w.t).Database(n).Drop(ctx)
	})
	return n
}

func (w *world) store(t registry.Tenant) *store.Store {
	return store.New(mongotest.Client(w.t).Database(t.Database), store.Options{})
}

// create creates a tenant with a superuser and one student.
func (w *world) create(name string) registry.Tenant {
	w.t.Helper()
	c, err := w.m.Create(w.t.Context(), tenancy.NewTenant{Name: name, Hosts: []string{name + ".school.localhost"},
		Superuser: "head", SuperuserPassword: password})
	if err != nil {
		w.t.Fatalf("create %s: %v", name, err)
	}
	if _, err := w.store(c.Tenant).CreateStudent(w.t.Context(), store.StudentInput{RegistrationNo: "R/" + name, FirstName: "Ada", SecondName: "Obi"}); err != nil {
		w.t.Fatal(err)
	}
	return c.Tenant
}

// nothingOf checks that neither the registry nor the database server holds
// anything of name.
func (w *world) nothingOf(name string) {
	w.t.Helper()
	if _, err := w.reg.Tenant(w.t.Context(), name); !errors.Is(err, registry.ErrNotFound) {
		w.t.Errorf("registry still holds %s: %v", name, err)
	}
	empty, err := store.New(mongotest.Client(w.t).Database(name), store.Options{}).Empty(w.t.Context())
	if err != nil || !empty {
		w.t.Errorf("database %s not empty (%v)", name, err)
	}
}

// The saga: a created tenant is active, its database stamped with its
// ID and migrated, its superuser can log in.
func TestCreateSaga(t *testing.T) {
	w := newWorld(t)
	name := w.name()
	tn := w.create(name)
	if tn.State != registry.StateActive || tn.ID == "" {
		t.Fatalf("created %+v", tn)
	}
	st := w.store(tn)
	if id, err := st.TenantID(t.Context()); err != nil || id != tn.ID {
		t.Errorf("stamp %q %v, want %s", id, err, tn.ID)
	}
	if err := st.CheckSchema(t.Context()); err != nil {
		t.Error(err)
	}
	if _, err := st.Authenticate(t.Context(), "head", password, "192.0.2.1"); err != nil {
		t.Errorf("superuser: %v", err)
	}
	// The same name or host again: typed errors naming the holder.
	_, err := w.m.Create(t.Context(), tenancy.NewTenant{Name: name, Hosts: []string{"other-" + name + ".localhost"}})
	var taken *tenancy.NameTakenError
	if !errors.As(err, &taken) || taken.Existing.ID != tn.ID {
		t.Errorf("same name: %v", err)
	}
	other := w.name()
	_, err = w.m.Create(t.Context(), tenancy.NewTenant{Name: other, Hosts: []string{name + ".school.localhost"}})
	var host *tenancy.HostTakenError
	if !errors.As(err, &host) || host.Owner.ID != tn.ID {
		t.Errorf("same host: %v", err)
	}
	w.nothingOf(other)
}

// Every step of a create that fails leaves nothing behind (and never
// drops data that is not the new tenant's).
func TestCreateUndoOnEachFailingStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(w *world, name string) tenancy.NewTenant
		check func(t *testing.T, err error)
	}{{
		name: "bad superuser: refused before anything is written",
		setup: func(w *world, name string) tenancy.NewTenant {
			return tenancy.NewTenant{Name: name, Hosts: []string{name + ".localhost"}, Superuser: "head", SuperuserPassword: "short"}
		},
		check: func(t *testing.T, err error) {
			var su *tenancy.SuperuserError
			if !errors.As(err, &su) {
				t.Errorf("err %v, want a SuperuserError", err)
			}
		},
	}, {
		name: "database down: refused before anything is written",
		setup: func(w *world, name string) tenancy.NewTenant {
			w.m.Database = tenancy.DatabaseAddress{URI: "mongodb://127.0.0.1:1"}
			return tenancy.NewTenant{Name: name, Hosts: []string{name + ".localhost"}}
		},
		check: func(t *testing.T, err error) {
			var un *tenancy.UnreachableError
			if !errors.As(err, &un) {
				t.Errorf("err %v, want UnreachableError", err)
			}
		},
	}, {
		name: "migration step fails: database dropped, claim removed",
		setup: func(w *world, name string) tenancy.NewTenant {
			w.m.Hooks.BeforeActivate = func(registry.Tenant) error { return errors.New("boom (test)") }
			return tenancy.NewTenant{Name: name, Hosts: []string{name + ".localhost"}, Superuser: "head", SuperuserPassword: password}
		},
		check: func(t *testing.T, err error) {
			var u *tenancy.UndoneError
			if !errors.As(err, &u) || u.UndoErr != nil || !strings.Contains(u.Error(), "boom (test)") {
				t.Errorf("err %v, want an undone create", err)
			}
		},
	}, {
		name: "credential step fails: database dropped, claim removed, token revoked",
		setup: func(w *world, name string) tenancy.NewTenant {
			w.m.Credentials = &failingTokens{}
			return tenancy.NewTenant{Name: name, Hosts: []string{name + ".localhost"}}
		},
		check: func(t *testing.T, err error) {
			var u *tenancy.UndoneError
			if !errors.As(err, &u) || !strings.Contains(u.Failed, "token") {
				t.Errorf("err %v, want an undone create at the token step", err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			name := w.name()
			_, err := w.m.Create(t.Context(), tc.setup(w, name))
			tc.check(t, err)
			w.nothingOf(name)
		})
	}
}

// A database written to by someone else between the checks and the claim:
// the create fails at its second check, removes its claim and leaves that
// data alone.
func TestCreateLeavesForeignDataAlone(t *testing.T) {
	w := newWorld(t)
	name := w.name()
	w.m.Hooks.BeforeClaim = func(registry.Tenant) {
		if _, err := mongotest.Client(t).Database(name).Collection("students").InsertOne(context.Background(), bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Error(err)
		}
	}
	_, err := w.m.Create(t.Context(), tenancy.NewTenant{Name: name, Hosts: []string{name + ".localhost"}})
	var ne *tenancy.DatabaseNotEmptyError
	if !errors.As(err, &ne) {
		t.Fatalf("err %v, want DatabaseNotEmptyError", err)
	}
	if _, err := w.reg.Tenant(t.Context(), name); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("claim kept: %v", err)
	}
	n, err := mongotest.Client(t).Database(name).Collection("students").CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 1 {
		t.Errorf("the other data: %d documents, %v; want it untouched", n, err)
	}
}

// failingTokens issue no token.
type failingTokens struct{ revoked []string }

func (f *failingTokens) TenantToken(context.Context, string, bool) (string, error) {
	return "", errors.New("no token (test)")
}

func (f *failingTokens) RevokeTenantToken(_ context.Context, tenant string) error {
	f.revoked = append(f.revoked, tenant)
	return nil
}

// Backup, purge, restore: the same school (same ID, its student and its
// superuser); --as gives a new ID; an archive never lands on another
// school; a restore that fails mid-way keeps nothing.
func TestRestoreArchive(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	name := w.name()
	tn := w.create(name)
	archive := filepath.Join(t.TempDir(), tenancy.ArchiveName(name, w.now))
	if _, err := w.m.BackupToFile(ctx, tn, archive, tenancy.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	// Over the live school: refused.
	_, err := w.m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{})
	var target *tenancy.ArchiveTargetError
	if !errors.As(err, &target) || target.Existing.ID != tn.ID {
		t.Fatalf("restore over the live school: %v", err)
	}
	// Beside it, as another school: a new ID, the same data.
	copyName := w.name()
	r, err := w.m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{As: copyName, Hosts: []string{copyName + ".localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Tenant.ID == tn.ID || r.Tenant.Name != copyName || r.Source.ID != tn.ID {
		t.Errorf("restored as %+v from %+v", r.Tenant, r.Source)
	}
	// A failure while the documents are written: nothing is kept.
	failed := w.name()
	w.m.Hooks.BeforeBatch = func(string, int) error { return errors.New("disk full (test)") }
	_, err = w.m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{As: failed, Hosts: []string{failed + ".localhost"}})
	var u *tenancy.UndoneError
	if !errors.As(err, &u) {
		t.Fatalf("failed restore: %v", err)
	}
	w.nothingOf(failed)
	w.m.Hooks.BeforeBatch = nil
	// Purged, then restored: the same school.
	if _, err := w.m.Delete(ctx, tn, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	w.nothingOf(name)
	r, err = w.m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Tenant.ID != tn.ID || r.Tenant.State != registry.StateActive {
		t.Errorf("restored %+v, want ID %s active", r.Tenant, tn.ID)
	}
	if _, err := w.store(r.Tenant).Authenticate(ctx, "head", password, "192.0.2.1"); err != nil {
		t.Errorf("superuser after restore: %v", err)
	}
	if n, err := w.store(r.Tenant).CountStudents(ctx); err != nil || n != 1 {
		t.Errorf("students after restore: %d %v", n, err)
	}
}

// Delete keeps data and the name; purge drops both, but never a database
// stamped for another tenant; purge --expired goes by the clock.
func TestDeleteAndPurge(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	a, b := w.create(w.name()), w.create(w.name())
	a, err := w.m.Delete(ctx, a, time.Hour, false)
	if err != nil || a.State != registry.StateDeleted {
		t.Fatalf("delete: %+v %v", a, err)
	}
	var ws *tenancy.WrongStateError
	if _, err := w.m.SetState(ctx, a.Name, registry.StateActive); !errors.As(err, &ws) {
		t.Errorf("resume a deleted tenant: %v", err)
	}
	if err := tenancy.CanPurge(b); !errors.As(err, &ws) {
		t.Errorf("purge an active tenant allowed: %v", err)
	}
	// b's database stamped into a's place: purging a must not drop it.
	if err := w.store(a).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.store(a).MigrateTenant(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	var foreign *tenancy.ForeignDatabaseError
	if err := w.m.Purge(ctx, a); !errors.As(err, &foreign) {
		t.Fatalf("purge over a foreign stamp: %v", err)
	}
	if id, _ := w.store(a).TenantID(ctx); id != b.ID {
		t.Errorf("foreign database dropped (stamp %q)", id)
	}
	if _, err := w.reg.Tenant(ctx, a.Name); err != nil {
		t.Errorf("a purged despite the refusal: %v", err)
	}
	// Clean again: purge --expired purges a only once its retention ended.
	if err := w.store(a).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if purged, err := w.m.PurgeExpired(ctx); err != nil || len(purged) != 0 {
		t.Errorf("before the retention ended: purged %v, %v", purged, err)
	}
	w.now = w.now.Add(2 * time.Hour)
	if purged, err := w.m.PurgeExpired(ctx); err != nil || len(purged) != 1 || purged[0].ID != a.ID {
		t.Errorf("after the retention ended: purged %v, %v", purged, err)
	}
	w.nothingOf(a.Name)
	if _, err := w.reg.Tenant(ctx, b.Name); err != nil {
		t.Errorf("b gone: %v", err)
	}
}

// A fleet migration migrates each tenant with its own ID: a database
// stamped for another fails that tenant only, untouched.
func TestFleetMigration(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	a, b := w.create(w.name()), w.create(w.name())
	// b's database holds a's stamp.
	if err := w.store(b).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.store(b).MigrateTenant(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	var seen []string
	w.m.Hooks.BeforeMigrate = func(t registry.Tenant) error { seen = append(seen, t.Name); return nil }
	ts, err := w.m.MigrationTargets(ctx, false, []string{a.Name, b.Name})
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.m.Migrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Client.Disconnect(context.WithoutCancel(ctx))
	m.Parallel, m.Force = 2, true
	res := m.Run(ctx, ts)
	if res[0].Status != tenancy.MigrateMigrated || res[1].Status != tenancy.MigrateFailed {
		t.Errorf("results %+v", res)
	}
	if len(seen) != 1 || seen[0] != a.Name {
		t.Errorf("migrated %v, want only %s", seen, a.Name)
	}
	if id, _ := w.store(b).TenantID(ctx); id != a.ID {
		t.Errorf("b's database stamp changed to %q", id)
	}
	if _, err := w.m.MigrationTargets(ctx, false, []string{"nobody-" + a.Name}); err == nil {
		t.Error("an unknown tenant is a target")
	}
}

// An app that read its school's record (active) just before the school
// was purged must not make the database again: stamped with the purged
// ID, it would stand in the way of a restore, or of a new school of that
// name. Another school's database is not touched.
func TestAppStartingAfterPurgeMakesNoDatabase(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	a, b := w.create(w.name()), w.create(w.name())
	stale := a // the record the app read while a was active
	a, err := w.m.Delete(ctx, a, time.Hour, true)
	if err != nil {
		t.Fatalf("delete --purge-data: %v", err)
	}
	w.nothingOf(a.Name)
	st, err := tenancy.OpenServed(ctx, mongotest.URI(t), stale, true, slog.New(slog.DiscardHandler))
	var noDB *tenancy.NoDatabaseError
	if !errors.As(err, &noDB) {
		if st != nil {
			st.Close(ctx)
		}
		t.Fatalf("app start on the purged school's database: %v, want NoDatabaseError", err)
	}
	w.nothingOf(a.Name)
	st, err = tenancy.OpenServed(ctx, mongotest.URI(t), b, true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("b's app refused: %v", err)
	}
	defer st.Close(ctx)
	if id, err := st.TenantID(ctx); err != nil || id != b.ID {
		t.Errorf("b's stamp %q, %v", id, err)
	}
}

// A purge drops what a late app writes after the drop: an app of the
// school that was starting when it was deleted (it read the record just
// before) migrates, and its first write makes the database again, stamped.
// The purge drops it again, so that the school's archive can be restored;
// the other school's database is untouched, and a database stamped for
// another tenant that appears under the name is never dropped.
func TestPurgeDropsLateWrites(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		lateID   func(a registry.Tenant) string
		wantGone bool
	}{
		{"a late write of the purged school's app", func(a registry.Tenant) string { return a.ID }, true},
		{"another tenant's database under the name", func(registry.Tenant) string { return "someone-else" }, false},
	} {
		a, b := w.create(w.name()), w.create(w.name())
		w.m.Hooks.AfterDrop = func(p registry.Tenant) {
			if _, _, err := w.store(p).MigrateTenant(ctx, tc.lateID(p)); err != nil {
				t.Errorf("%s: the late write: %v", tc.name, err)
			}
		}
		if _, err := w.m.Delete(ctx, a, time.Hour, true); err != nil {
			t.Fatalf("%s: delete --purge-data: %v", tc.name, err)
		}
		w.m.Hooks.AfterDrop = nil
		id, err := w.store(a).TenantID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tc.wantGone {
			w.nothingOf(a.Name)
		} else if id != "someone-else" {
			t.Errorf("%s: stamp %q after the purge, want the other tenant's database kept", tc.name, id)
		}
		if got, err := w.store(b).TenantID(ctx); err != nil || got != b.ID {
			t.Errorf("%s: the other school's stamp %q, %v", tc.name, got, err)
		}
		if n, err := w.store(b).CountStudents(ctx); err != nil || n != 1 {
			t.Errorf("%s: the other school has %d students (%v), want its 1", tc.name, n, err)
		}
	}
}
