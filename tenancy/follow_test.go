package tenancy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// TestTenantFollower: a running app learns hosts added to and removed from
// its own tenant, never another tenant's, and stops when its name is
// re-created under another ID.
func TestTenantFollower(t *testing.T) {
	ctx := t.Context()
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	create := func(name string) registry.Tenant {
		t.Helper()
		nt, err := registry.NewTenant(name, []string{name + ".school.localhost"}, name)
		if err != nil {
			t.Fatal(err)
		}
		if nt, err = reg.CreateTenant(ctx, nt); err != nil {
			t.Fatal(err)
		}
		return nt
	}
	alpha, _ := create("alpha"), create("beta")

	f := NewFollower(alpha)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- f.Run(runCtx, reg, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitHosts := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !slices.Equal(f.Current().Hosts, want) {
			if time.Now().After(deadline) {
				t.Fatalf("hosts %v, want %v", f.Current().Hosts, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	if _, err := reg.AddHost(ctx, "alpha", "records.alpha.example"); err != nil {
		t.Fatal(err)
	}
	waitHosts("alpha.school.localhost", "records.alpha.example")
	if _, err := reg.AddHost(ctx, "beta", "records.beta.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RemoveHost(ctx, "alpha", "records.alpha.example"); err != nil {
		t.Fatal(err)
	}
	waitHosts("alpha.school.localhost") // and never beta's host
	if cur := f.Current(); cur.ID != alpha.ID || cur.Name != "alpha" || cur.Database != alpha.Database {
		t.Errorf("identity changed: %+v", cur)
	}

	// Deleted, purged and re-created: another school under the old name.
	if err := reg.PurgeTenant(ctx, "alpha", alpha.ID); err != nil {
		t.Fatal(err)
	}
	create("alpha")
	select {
	case err := <-done:
		if !errors.Is(err, ErrTenantReplaced) {
			t.Fatalf("run: %v, want ErrTenantReplaced", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the follower kept serving a tenant re-created with another ID")
	}
	if got := f.Current(); got.ID != alpha.ID {
		t.Errorf("after replacement the app's record has ID %s, want the old %s", got.ID, alpha.ID)
	}
}
