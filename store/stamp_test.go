package store

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/campus-saas/campus/internal/mongotest"
)

const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestMigrateTenantStamps: a new database is stamped by MigrateTenant, a
// legacy (migrated, unstamped) one too, and a database stamped for one
// tenant ID is refused, untouched, to every other.
func TestMigrateTenantStamps(t *testing.T) {
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{})
	if empty, err := s.Empty(ctx); err != nil || !empty {
		t.Fatalf("new database: Empty = %v, %v", empty, err)
	}
	if err := s.CheckTenant(ctx, idA); !errors.Is(err, ErrNotStamped) {
		t.Fatalf("CheckTenant of a new database: %v, want ErrNotStamped", err)
	}
	if _, to, err := s.MigrateTenant(ctx, idA); err != nil || to != SchemaVersion {
		t.Fatalf("MigrateTenant: to %d, %v", to, err)
	}
	if got, err := s.TenantID(ctx); err != nil || got != idA {
		t.Fatalf("TenantID = %q, %v; want %s", got, err, idA)
	}
	if err := s.CheckTenant(ctx, idA); err != nil {
		t.Fatalf("CheckTenant(own ID): %v", err)
	}
	if empty, err := s.Empty(ctx); err != nil || empty {
		t.Fatalf("migrated database: Empty = %v, %v", empty, err)
	}
	if from, to, err := s.MigrateTenant(ctx, idA); err != nil || from != to {
		t.Fatalf("second MigrateTenant: %d→%d, %v", from, to, err)
	}

	mustCreate(t, s, "A/1", "Ada", "Lovelace")
	for _, check := range []func() error{
		func() error { return s.CheckTenant(ctx, idB) },
		func() error { _, _, err := s.MigrateTenant(ctx, idB); return err },
	} {
		err := check()
		var tm *TenantMismatchError
		if !errors.As(err, &tm) || !errors.Is(err, ErrWrongTenant) || tm.Got != idA || tm.Want != idB {
			t.Fatalf("another tenant's ID: %v, want a TenantMismatchError got %s want %s", err, idA, idB)
		}
		if !strings.Contains(err.Error(), idA) || !strings.Contains(err.Error(), idB) {
			t.Errorf("message %q should name both IDs", err)
		}
	}
	if got, _ := s.TenantID(ctx); got != idA || count(t, s) != 1 {
		t.Fatalf("after refusals: stamp %q, %d students; want %s and 1", got, count(t, s), idA)
	}

	// A database migrated before tenant IDs existed is stamped on migrate.
	legacy := New(mongotest.Database(t), Options{})
	if _, _, err := legacy.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := legacy.CheckTenant(ctx, idB); !errors.Is(err, ErrNotStamped) {
		t.Fatalf("legacy database: %v, want ErrNotStamped", err)
	}
	if _, _, err := legacy.MigrateTenant(ctx, idB); err != nil {
		t.Fatalf("MigrateTenant of a legacy database: %v", err)
	}
	if err := legacy.CheckTenant(ctx, idB); err != nil {
		t.Fatalf("legacy database after MigrateTenant: %v", err)
	}
}

// TestStampRace: two tenants stamping one database at once: exactly one
// succeeds, and the stamp is the winner's.
func TestStampRace(t *testing.T) {
	db := mongotest.Database(t)
	ids := []string{idA, idB, "cccccccccccccccccccccccccccccccc", "dddddddddddddddddddddddddddddddd"}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, id := range ids {
		wg.Go(func() {
			s := New(db, Options{})
			<-start
			_, _, errs[i] = s.MigrateTenant(t.Context(), id)
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner != "":
			t.Fatalf("both %s and %s stamped the database", winner, ids[i])
		case err == nil:
			winner = ids[i]
		case !errors.Is(err, ErrWrongTenant):
			t.Errorf("%s: %v, want ErrWrongTenant", ids[i], err)
		}
	}
	got, err := New(db, Options{}).TenantID(t.Context())
	if winner == "" || err != nil || got != winner {
		t.Fatalf("stamp %q (%v), winner %q", got, err, winner)
	}
}

func TestValidateSuperuser(t *testing.T) {
	if fe := ValidateSuperuser("head", "head@example.com", "long-enough-pw"); fe != nil {
		t.Fatalf("valid input: %v", fe)
	}
	fe := ValidateSuperuser("bad name", "not-an-email", "123")
	for _, f := range []string{"username", "email", "password"} {
		if fe[f] == "" {
			t.Errorf("no error on %s: %v", f, fe)
		}
	}
	if fe := ValidateSuperuser("eve", "", "Eve"); fe["password"] == "" {
		t.Errorf("short password accepted: %v", fe)
	}
}
