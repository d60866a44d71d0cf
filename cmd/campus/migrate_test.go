package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// setSchemaVersion makes tenant name's database look migrated by an older
// binary.
func setSchemaVersion(t *testing.T, name string, v int) {
	t.Helper()
	_, err := mongotest.Client(t).Database(name).Collection("meta").UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: "schema"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: v}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		t.Fatal(err)
	}
}

func schemaOK(t *testing.T, name string) error {
	t.Helper()
	return store.New(mongotest.Client(t).Database(name), store.Options{}).CheckSchema(context.Background())
}

// A tenant whose migration fails stops alone: the others are migrated,
// the failure is reported, and a second run finishes it.
func TestMigrateAllFailureStopsOneTenantOnly(t *testing.T) {
	c := newCLI(t)
	var names []string
	for i := range 4 {
		n := uniqueTenant(t, fmt.Sprintf("mig%d", i))
		names = append(names, n)
		c.createSchool(n, "head", "M/1")
		setSchemaVersion(t, n, 0)
	}
	purgeAtEnd(c, names...)
	bad := names[2]
	// A real reason for Migrate to fail: two students share a
	// registration number, so the unique index cannot be built.
	ctx := context.Background()
	students := mongotest.Client(t).Database(bad).Collection("students")
	if err := students.Indexes().DropOne(ctx, "registration_no_unique"); err != nil {
		t.Fatal(err)
	}
	if _, err := students.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(99)}, {Key: "registration_no", Value: "M/1"}}); err != nil {
		t.Fatal(err)
	}

	r := c.run("", nil, "migrate", "--all", "--parallel", "3")
	t.Logf("first run:\n%s%s", r.stdout, r.stderr)
	if r.code != 1 {
		t.Fatalf("first run: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"migrated  3", "failed    1", "4 tenants in"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "1 of 4 tenants failed to migrate ("+bad+")") || !strings.Contains(r.stderr, "tenant "+bad+": failed") {
		t.Errorf("stderr does not report %s:\n%s", bad, r.stderr)
	}
	for _, n := range names {
		err := schemaOK(t, n)
		if n == bad {
			if !errors.Is(err, store.ErrNotMigrated) {
				t.Errorf("%s (made to fail): %v, want still not migrated", n, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v; the other tenants must be migrated", n, err)
		}
	}

	// Fixed, the second run finishes it and skips the others.
	// (the failed run may have copied it already: schema 4's string _id)
	if _, err := students.DeleteOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{int64(99), "0000000000000000099"}}}}}); err != nil {
		t.Fatal(err)
	}
	out := c.ok("migrate", "--all").stdout
	for _, want := range []string{"migrated  1", "skipped   3", "failed    0", fmt.Sprintf("%s  migrated  0     %d", bad, store.SchemaVersion)} {
		if !strings.Contains(out, want) {
			t.Errorf("second run lacks %q:\n%s", want, out)
		}
	}
	if err := schemaOK(t, bad); err != nil {
		t.Errorf("%s after the second run: %v", bad, err)
	}
	out = c.ok("migrate", "--all").stdout
	if !strings.Contains(out, "skipped   4") || !strings.Contains(out, "migrated  0") {
		t.Errorf("third run:\n%s", out)
	}
	// --force runs the (idempotent) steps again everywhere.
	out = c.ok("migrate", "--all", "--force").stdout
	if !strings.Contains(out, "migrated  4") || !strings.Contains(out, "skipped   0") {
		t.Errorf("--force run:\n%s", out)
	}
}

// migrate --all never migrates one tenant's database for another: a
// database stamped for another tenant ID fails that tenant, untouched.
func TestMigrateAllRefusesAForeignStamp(t *testing.T) {
	c := newCLI(t)
	a, b := uniqueTenant(t, "mfa"), uniqueTenant(t, "mfb")
	purgeAtEnd(c, a, b)
	c.createSchool(a, "head", "A/1")
	tb := c.createSchool(b, "head", "B/1")
	setSchemaVersion(t, b, 0)
	// b's database now claims to be a's.
	meta := mongotest.Client(t).Database(b).Collection("meta")
	if _, err := meta.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "tenant"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "tenant_id", Value: c.tenant(a).ID}}}}); err != nil {
		t.Fatal(err)
	}
	r := c.run("", nil, "migrate", "--all")
	if r.code != 1 || !strings.Contains(r.stdout, "stamped for tenant ID") || !strings.Contains(r.stderr, "("+b+")") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := schemaOK(t, b); !errors.Is(err, store.ErrNotMigrated) {
		t.Errorf("%s (ID %s) was migrated under a foreign stamp: %v", b, tb.ID, err)
	}
}

func TestMigrateDrainAndNames(t *testing.T) {
	c := newCLI(t)
	act, sus := uniqueTenant(t, "mda"), uniqueTenant(t, "mds")
	purgeAtEnd(c, act, sus)
	c.createSchool(act, "head", "A/1")
	c.createSchool(sus, "head", "S/1")
	c.ok("tenant", "suspend", sus)
	for _, n := range []string{act, sus} {
		setSchemaVersion(t, n, 0)
	}
	var seen []registry.State
	hooks.BeforeMigrate = func(t registry.Tenant) error {
		seen = append(seen, t.State)
		return nil
	}
	defer func() { hooks.BeforeMigrate = nil }()
	out := c.ok("migrate", act, sus, "--drain", "--drain-timeout", "1s", "--parallel", "1").stdout
	if !strings.Contains(out, "migrated  2") {
		t.Errorf("output:\n%s", out)
	}
	if len(seen) != 2 {
		t.Errorf("hook saw %v", seen)
	}
	if got := c.tenant(act).State; got != registry.StateActive {
		t.Errorf("after --drain, %s is %s, want active again", act, got)
	}
	if got := c.tenant(sus).State; got != registry.StateSuspended {
		t.Errorf("after --drain, %s is %s, want still suspended", sus, got)
	}
	for _, n := range []string{act, sus} {
		if err := schemaOK(t, n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, args := range [][]string{{"migrate"}, {"migrate", "--all", act}, {"migrate", "--all", "--parallel", "0"}} {
		if r := c.run("", nil, args...); r.code != 2 {
			t.Errorf("campus %s: exit %d, want 2 (usage)", strings.Join(args, " "), r.code)
		}
	}
	if r := c.run("", nil, "migrate", "nope-"+act); r.code != 1 || !strings.Contains(r.stderr, "unknown tenant") {
		t.Errorf("unknown tenant: exit %d %s", r.code, r.stderr)
	}
}

func TestProgressBarOnATerminal(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b, true)
	for i := 1; i <= 3; i++ {
		p.update(i, 3, tenancy.MigrateResult{Tenant: "t", Status: tenancy.MigrateSkipped})
	}
	p.finish()
	if !strings.Contains(b.String(), "\r[##############################] 3/3  migrated 0  skipped 3  failed 0") {
		t.Errorf("bar:\n%q", b.String())
	}
	b.Reset()
	p = newProgress(&b, false)
	p.update(1, 2, tenancy.MigrateResult{Tenant: "a", Status: tenancy.MigrateSkipped})
	p.update(2, 2, tenancy.MigrateResult{Tenant: "b", Status: tenancy.MigrateMigrated, From: 0, To: 1})
	p.finish()
	if strings.Contains(b.String(), "\r") || strings.Contains(b.String(), "tenant a") || !strings.Contains(b.String(), "tenant b: migrated from schema version 0 to 1 ") {
		t.Errorf("plain output:\n%q", b.String())
	}
}

// An interrupted run (Ctrl-C) reports the tenants it did not start as
// failed, so the summary asks for another run.
func TestMigrateInterruptedReportsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &tenancy.FleetMigrator{Parallel: 2}
	res := m.Run(ctx, []registry.Tenant{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	for _, r := range res {
		if r.Status != tenancy.MigrateFailed || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %s %v, want failed: not started", r.Tenant, r.Status, r.Err)
		}
	}
	var b strings.Builder
	if err := migrateSummary(&b, res, 0, 2); err == nil || !strings.Contains(err.Error(), "3 of 3 tenants failed") {
		t.Errorf("summary error %v\n%s", err, b.String())
	}
}
