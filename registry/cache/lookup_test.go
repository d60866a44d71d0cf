package cache_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/cache"
	"github.com/campus-saas/campus/registry/embedded"
)

// TestLookupPassesThrough: the wrapper offers its backend's host lookup,
// and a snapshot from its Watch at the version the lookup names holds what
// the lookup found; a backend without lookups says so.
func TestLookupPassesThrough(t *testing.T) {
	e := newEnv(t)
	c := e.cached(t)
	ctx := ctxT(t, time.Minute)
	if _, err := c.Snapshot(ctx); err != nil { // the watcher runs, as under a proxy
		t.Fatal(err)
	}
	tn := tenant(t, "looked")
	if _, err := e.backend(t).CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if !c.Lookups() {
		t.Fatal("Lookups() = false over the Consul backend")
	}
	res, err := c.LookupHost(ctx, tn.PrimaryHost)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tenant != tn.Name || res.Version == 0 {
		t.Fatalf("LookupHost(%s) = %+v, want tenant %s at a version", tn.PrimaryHost, res, tn.Name)
	}
	s, err := c.Watch(ctx, res.Version-1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version < res.Version || !has(s, tn.Name) {
		t.Errorf("Watch after the lookup: version %d (lookup said %d), tenant listed %v", s.Version, res.Version, has(s, tn.Name))
	}

	emb, err := embedded.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	ce, err := cache.New(emb, cache.Config{Path: filepath.Join(t.TempDir(), "state.json"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	if ce.Lookups() {
		t.Error("Lookups() = true over the embedded backend")
	}
	if _, err := ce.LookupHost(ctx, tn.PrimaryHost); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("LookupHost over the embedded backend: %v, want ErrUnsupported", err)
	}
	var _ registry.HostLookup = ce
}
