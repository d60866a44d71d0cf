package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// These tests try each crossing between tenants that share a name over
// time, and check that it fails to cross.

const testPassword = "long-enough-pw"

// createSchool creates tenant name with host name.school.localhost, the
// superuser admin and one student with registration number regNo.
func (c *cli) createSchool(name, admin, regNo string) registry.Tenant {
	c.t.Helper()
	r := c.run("", map[string]string{superuserPasswordEnv: testPassword},
		"tenant", "create", name, "--host", name+".school.localhost", "--superuser", admin)
	if r.code != 0 {
		c.t.Fatalf("create %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
	}
	csv := filepath.Join(c.t.TempDir(), "students.csv")
	if err := os.WriteFile(csv, []byte("registration_no,first_name,second_name\n"+regNo+",Ada,Obi\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.ok("manage", name, "students", "import", csv)
	return c.tenant(name)
}

// tenant reads name from the registry through `tenant show --json`.
func (c *cli) tenant(name string) registry.Tenant {
	c.t.Helper()
	var tn registry.Tenant
	if err := json.Unmarshal([]byte(c.ok("tenant", "show", name, "--json").stdout), &tn); err != nil {
		c.t.Fatal(err)
	}
	return tn
}

// registered reports whether the registry has a tenant called name, in
// any state.
func (c *cli) registered(name string) bool {
	c.t.Helper()
	for _, flags := range [][]string{{"--json"}, {"--json", "--deleted"}} {
		var ts []registry.Tenant
		if err := json.Unmarshal([]byte(c.ok(append([]string{"tenant", "list"}, flags...)...).stdout), &ts); err != nil {
			c.t.Fatal(err)
		}
		if slices.ContainsFunc(ts, func(t registry.Tenant) bool { return t.Name == name }) {
			return true
		}
	}
	return false
}

// collections lists the collections of database name, straight from the
// server.
func collections(t *testing.T, name string) []string {
	t.Helper()
	names, err := mongotest.Client(t).Database(name).ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// canLogIn reports whether username/password authenticates against the
// database of tenant name.
func canLogIn(t *testing.T, name, username string) bool {
	t.Helper()
	st := store.New(mongotest.Client(t).Database(name), store.Options{})
	_, err := st.Authenticate(context.Background(), username, testPassword, "192.0.2.1")
	if err != nil && !errors.Is(err, store.ErrBadCredentials) {
		t.Fatal(err)
	}
	return err == nil
}

func purgeAtEnd(c *cli, names ...string) {
	c.t.Cleanup(func() {
		for _, n := range names {
			c.run("", nil, "tenant", "delete", n, "--purge-data", "--yes")
			c.run("", nil, "tenant", "purge", n, "--yes")
		}
	})
}

func TestDeleteKeepsDataAndTheNameUntilPurge(t *testing.T) {
	c := newCLI(t)
	lagos := uniqueTenant(t, "lagos")
	purgeAtEnd(c, lagos)
	old := c.createSchool(lagos, "head", "L/1")
	if registry.ValidateID(old.ID) != nil || old.State != registry.StateActive {
		t.Fatalf("created %+v", old)
	}

	out := c.ok("tenant", "delete", lagos).stdout
	for _, want := range []string{"kept until", "restore", "purge", "reserved"} {
		if !strings.Contains(out, want) {
			t.Errorf("delete output lacks %q:\n%s", want, out)
		}
	}
	del := c.tenant(lagos)
	if del.State != registry.StateDeleted || del.ID != old.ID || (del.PurgeAfter.Sub(del.DeletedAt)-defaultRetention).Abs() > time.Minute {
		t.Fatalf("after delete: %+v; want deleted, same ID, purge after 30 days", del)
	}
	if !strings.Contains(c.ok("tenant", "list", "--deleted").stdout, lagos) || strings.Contains(c.ok("tenant", "list").stdout, lagos) {
		t.Errorf("list / list --deleted do not separate the deleted tenant")
	}

	t.Run("create with the same name is refused", func(t *testing.T) {
		r := c.run("", map[string]string{superuserPasswordEnv: testPassword},
			"tenant", "create", lagos, "--host", "new-"+lagos+".school.localhost", "--superuser", "eve")
		if r.code == 0 || !strings.Contains(r.stderr, "tenant restore "+lagos) || !strings.Contains(r.stderr, "tenant purge "+lagos) {
			t.Fatalf("exit %d, stderr %q; want a refusal naming restore and purge", r.code, r.stderr)
		}
		if canLogIn(t, lagos, "eve") {
			t.Fatal("the refused create made its superuser in the old school's database")
		}
	})
	t.Run("its host is still reserved", func(t *testing.T) {
		other := uniqueTenant(t, "other")
		r := c.run("", nil, "tenant", "create", other, "--host", lagos+".school.localhost")
		if r.code == 0 || !strings.Contains(r.stderr, "deleted") || c.registered(other) {
			t.Fatalf("exit %d, stderr %q; want a refusal saying the owner is deleted", r.code, r.stderr)
		}
	})
	t.Run("no app, no manage", func(t *testing.T) {
		if r := c.run("", nil, "app", "--tenant", lagos, "--listen", "127.0.0.1:0"); r.code != 1 || !strings.Contains(r.stderr, "restore") {
			t.Fatalf("app of a deleted tenant: exit %d %q", r.code, r.stderr)
		}
		if r := c.run("", map[string]string{superuserPasswordEnv: testPassword}, "manage", lagos, "createsuperuser", "--username", "eve", "--noinput"); r.code == 0 {
			t.Fatal("createsuperuser on a deleted tenant succeeded")
		}
		// What stays possible: migrate (an image upgrade's init) and export
		// (handing a school its data).
		c.ok("manage", lagos, "migrate")
		if out := c.ok("manage", lagos, "students", "export").stdout; !strings.Contains(out, "L/1") {
			t.Fatalf("export of a deleted tenant: %q", out)
		}
		if r := c.run("", nil, "tenant", "resume", lagos); r.code == 0 || !strings.Contains(r.stderr, "restore") {
			t.Fatalf("resume of a deleted tenant: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("restore brings back the same school", func(t *testing.T) {
		c.ok("tenant", "restore", lagos)
		back := c.tenant(lagos)
		if back.State != registry.StateActive || back.ID != old.ID || !slices.Equal(back.Hosts, old.Hosts) || !back.DeletedAt.IsZero() {
			t.Fatalf("restored %+v; want active with ID %s and hosts %v", back, old.ID, old.Hosts)
		}
		if out := c.ok("manage", lagos, "students", "export").stdout; !strings.Contains(out, "L/1") {
			t.Fatalf("restored school's students:\n%s", out)
		}
		if !canLogIn(t, lagos, "head") {
			t.Fatal("the restored school's admin cannot log in")
		}
		if r := c.run("", nil, "tenant", "restore", lagos); r.code == 0 {
			t.Fatal("restoring an active tenant succeeded")
		}
	})
}

func TestPurgeThenCreateIsANewSchool(t *testing.T) {
	c := newCLI(t)
	lagos := uniqueTenant(t, "lagos")
	purgeAtEnd(c, lagos)
	old := c.createSchool(lagos, "head", "L/1")
	c.ok("tenant", "delete", lagos)
	if r := c.run("", nil, "tenant", "purge", lagos, "--yes"); r.code != 0 || !strings.Contains(r.stdout, "dropped") {
		t.Fatalf("purge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if c.registered(lagos) || len(collections(t, lagos)) != 0 {
		t.Fatalf("after purge: registered %v, collections %v", c.registered(lagos), collections(t, lagos))
	}
	if r := c.run("", nil, "tenant", "restore", lagos); r.code == 0 {
		t.Fatal("restore after purge succeeded")
	}

	// Another school takes the name (and the host).
	r := c.run("", map[string]string{superuserPasswordEnv: testPassword},
		"tenant", "create", lagos, "--host", lagos+".school.localhost", "--superuser", "eve")
	if r.code != 0 {
		t.Fatalf("create after purge: %d %s", r.code, r.stderr)
	}
	now := c.tenant(lagos)
	if now.ID == old.ID || registry.ValidateID(now.ID) != nil {
		t.Fatalf("new school's ID %q, old %q: want a new ID", now.ID, old.ID)
	}
	if out := c.ok("manage", lagos, "students", "export").stdout; strings.Contains(out, "L/1") {
		t.Fatalf("the new school has the old one's students:\n%s", out)
	}
	if canLogIn(t, lagos, "head") {
		t.Fatal("the old school's admin can log in to the new school")
	}
	if !canLogIn(t, lagos, "eve") {
		t.Fatal("the new school's admin cannot log in")
	}
}

func TestPurgeExpired(t *testing.T) {
	c := newCLI(t)
	gone, kept := uniqueTenant(t, "gone"), uniqueTenant(t, "kept")
	purgeAtEnd(c, gone, kept)
	c.createSchool(gone, "head", "G/1")
	c.createSchool(kept, "head", "K/1")
	c.ok("tenant", "delete", gone, "--retention", "1ns")
	c.ok("tenant", "delete", kept)
	if r := c.run("", nil, "tenant", "purge", "--expired"); r.code != 0 || !strings.Contains(r.stdout, gone) || strings.Contains(r.stdout, kept) {
		t.Fatalf("purge --expired: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if c.registered(gone) || len(collections(t, gone)) != 0 {
		t.Errorf("expired tenant %s left: registered %v, collections %v", gone, c.registered(gone), collections(t, gone))
	}
	if c.tenant(kept).State != registry.StateDeleted || len(collections(t, kept)) == 0 {
		t.Errorf("tenant %s within its retention was purged", kept)
	}
	if r := c.run("", nil, "tenant", "purge", kept, "--yes", "--expired"); r.code == 0 {
		t.Error("purge NAME --expired succeeded; want a usage error")
	}
	active := uniqueTenant(t, "active")
	purgeAtEnd(c, active)
	c.ok("tenant", "create", active, "--host", active+".school.localhost")
	if r := c.run("", nil, "tenant", "purge", active, "--yes"); r.code == 0 || len(collections(t, active)) == 0 {
		t.Errorf("purge of an active tenant: exit %d %q", r.code, r.stderr)
	}
}

// assertNothingOf checks that a failed create of name left no registry
// entry, no database and no user.
func assertNothingOf(t *testing.T, c *cli, name string) {
	t.Helper()
	if c.registered(name) {
		t.Errorf("failed create left tenant %s in the registry", name)
	}
	if cols := collections(t, name); len(cols) != 0 {
		t.Errorf("failed create left database %s with collections %v", name, cols)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	c := newCLI(t)
	owner := uniqueTenant(t, "owner")
	purgeAtEnd(c, owner)
	c.createSchool(owner, "head", "O/1")
	pw := map[string]string{superuserPasswordEnv: testPassword}

	t.Run("host taken by another tenant", func(t *testing.T) {
		name := uniqueTenant(t, "thief")
		r := c.run("", pw, "tenant", "create", name, "--host", name+".school.localhost", "--host", owner+".school.localhost", "--superuser", "eve")
		if r.code == 0 || !strings.Contains(r.stderr, `"`+owner+`"`) {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
		assertNothingOf(t, c, name)
		// Its other host was not claimed either.
		c.ok("tenant", "create", uniqueTenant(t, "heir"), "--host", name+".school.localhost")
	})
	t.Run("bad superuser password", func(t *testing.T) {
		name := uniqueTenant(t, "badpw")
		r := c.run("", map[string]string{superuserPasswordEnv: "123"}, "tenant", "create", name, "--host", name+".school.localhost", "--superuser", "eve")
		if r.code == 0 || !strings.Contains(r.stderr, "password") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
		assertNothingOf(t, c, name)
	})
	t.Run("no superuser password", func(t *testing.T) {
		name := uniqueTenant(t, "nopw")
		if r := c.run("", nil, "tenant", "create", name, "--host", name+".school.localhost", "--superuser", "eve"); r.code == 0 {
			t.Fatal("create without the password succeeded")
		}
		assertNothingOf(t, c, name)
	})
	t.Run("existing name with --superuser eve", func(t *testing.T) {
		r := c.run("", pw, "tenant", "create", owner, "--host", "new.host.localhost", "--superuser", "eve")
		if r.code == 0 || !strings.Contains(r.stderr, "already exists") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
		if canLogIn(t, owner, "eve") {
			t.Fatal("eve was created in the existing tenant")
		}
		if c.registered(uniqueTenant(t, "x")) {
			t.Fatal("unexpected tenant")
		}
		c.ok("tenant", "create", uniqueTenant(t, "newhost"), "--host", "new.host.localhost") // not claimed
	})
	t.Run("database already holds data", func(t *testing.T) {
		name := uniqueTenant(t, "orphan")
		// A school deleted with its data kept before tenant IDs existed.
		db := mongotest.Client(t).Database(name)
		t.Cleanup(func() { db.Drop(context.Background()) })
		if _, err := db.Collection("students").InsertOne(context.Background(), bson.M{"_id": 1, "registration_no": "OLD/1"}); err != nil {
			t.Fatal(err)
		}
		r := c.run("", pw, "tenant", "create", name, "--host", name+".school.localhost", "--superuser", "eve")
		if r.code == 0 || !strings.Contains(r.stderr, "already holds data") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
		if c.registered(name) || !slices.Equal(collections(t, name), []string{"students"}) || canLogIn(t, name, "eve") {
			t.Fatalf("the refused create touched the old data or the registry: collections %v", collections(t, name))
		}
	})
	t.Run("failure after the claim is undone", func(t *testing.T) {
		name := uniqueTenant(t, "late")
		var sawDB []string
		hooks.BeforeActivate = func(tn registry.Tenant) error {
			sawDB = collections(t, tn.Database)
			return errors.New("injected failure")
		}
		r := c.run("", pw, "tenant", "create", name, "--host", name+".school.localhost", "--superuser", "eve")
		hooks.BeforeActivate = nil
		if r.code == 0 || !strings.Contains(r.stderr, "injected failure") || !strings.Contains(r.stderr, "nothing was kept") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
		if len(sawDB) == 0 {
			t.Fatal("the hook ran before the database was migrated")
		}
		assertNothingOf(t, c, name)
		c.ok("tenant", "create", name, "--host", name+".school.localhost") // name and host free again
		purgeAtEnd(c, name)
	})
}

// TestConcurrentCreatesOneWins: two creates of one name, both past their
// checks before either claims: exactly one wins, and the loser leaves
// nothing: no superuser, no stamp, no registry entry of its own.
func TestConcurrentCreatesOneWins(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "race")
	purgeAtEnd(c, name)
	var arrived sync.WaitGroup
	arrived.Add(2)
	hooks.BeforeClaim = func(registry.Tenant) {
		arrived.Done()
		arrived.Wait() // both creates have passed every check
	}
	defer func() { hooks.BeforeClaim = nil }()

	admins := []string{"eve", "mallory"}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, admin := range admins {
		wg.Go(func() {
			results[i] = c.run("", map[string]string{superuserPasswordEnv: testPassword},
				"tenant", "create", name, "--host", fmt.Sprintf("%s-%d.school.localhost", name, i), "--superuser", admin)
		})
	}
	wg.Wait()
	hooks.BeforeClaim = nil
	winner := -1
	for i, r := range results {
		if r.code == 0 {
			if winner >= 0 {
				t.Fatalf("both creates succeeded:\n%+v", results)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no create succeeded:\n%+v", results)
	}
	loser := 1 - winner
	if !strings.Contains(results[loser].stderr, "nothing was created") {
		t.Errorf("loser's message: %q", results[loser].stderr)
	}
	tn := c.tenant(name)
	if tn.State != registry.StateActive || !slices.Equal(tn.Hosts, []string{fmt.Sprintf("%s-%d.school.localhost", name, winner)}) {
		t.Fatalf("tenant after the race: %+v", tn)
	}
	st := store.New(mongotest.Client(t).Database(name), store.Options{})
	if err := st.CheckTenant(context.Background(), tn.ID); err != nil {
		t.Fatalf("database stamp: %v", err)
	}
	if !canLogIn(t, name, admins[winner]) || canLogIn(t, name, admins[loser]) {
		t.Fatalf("winner %s can log in: %v; loser %s can log in: %v", admins[winner], canLogIn(t, name, admins[winner]), admins[loser], canLogIn(t, name, admins[loser]))
	}
	// The loser's host was not claimed.
	c.ok("tenant", "create", uniqueTenant(t, "after"), "--host", fmt.Sprintf("%s-%d.school.localhost", name, loser))
}

func TestAppRefusesAnotherTenantsDatabase(t *testing.T) {
	c := newCLI(t)
	lagos := uniqueTenant(t, "lagos")
	purgeAtEnd(c, lagos)
	tn := c.createSchool(lagos, "head", "L/1")
	meta := mongotest.Client(t).Database(lagos).Collection("meta")
	ctx := context.Background()
	other := registry.NewID()
	if _, err := meta.UpdateOne(ctx, bson.M{"_id": "tenant"}, bson.M{"$set": bson.M{"tenant_id": other}}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"app", "--tenant", lagos, "--listen", "127.0.0.1:0"},
		{"app", "--tenant", lagos, "--listen", "127.0.0.1:0", "--migrate"},
		{"manage", lagos, "migrate"},
		{"manage", lagos, "students", "export"},
		{"manage", lagos, "changepassword", "head"},
	} {
		r := c.run("pw-one-two\npw-one-two\n", nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, other) || !strings.Contains(r.stderr, tn.ID) {
			t.Errorf("campus %s: exit %d, stderr %q; want a refusal naming IDs %s and %s", strings.Join(args, " "), r.code, r.stderr, other, tn.ID)
		}
		if strings.Contains(r.stdout, "L/1") {
			t.Errorf("campus %s printed the other tenant's data", strings.Join(args, " "))
		}
	}
	if got, _ := store.New(mongotest.Client(t).Database(lagos), store.Options{}).TenantID(ctx); got != other {
		t.Fatalf("stamp changed to %q by a refused command", got)
	}

	// A database from before tenant IDs: refused until migrate stamps it.
	if _, err := meta.DeleteOne(ctx, bson.M{"_id": "tenant"}); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", nil, "app", "--tenant", lagos, "--listen", "127.0.0.1:0"); r.code == 0 || !strings.Contains(r.stderr, "not stamped") {
		t.Fatalf("app on an unstamped database: exit %d %q", r.code, r.stderr)
	}
	c.ok("manage", lagos, "migrate")
	st := store.New(mongotest.Client(t).Database(lagos), store.Options{})
	if err := tenancy.CheckDatabase(ctx, st, tn); err != nil {
		t.Fatalf("after migrate, the start-up check: %v", err)
	}
	if out := c.ok("manage", lagos, "students", "export").stdout; !strings.Contains(out, "L/1") {
		t.Fatalf("export after stamping: %q", out)
	}
}
