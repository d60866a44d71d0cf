package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/cache"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/registrytest"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func tenant(t *testing.T, name string) registry.Tenant {
	t.Helper()
	tn, err := registry.NewTenant(name, []string{name + ".school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "registry.json")
	snap := registry.Snapshot{
		Version:   7,
		Tenants:   []registry.Tenant{tenant(t, "b"), tenant(t, "a")},
		Instances: []registry.Instance{{ID: "b-1", Tenant: "b", Addr: "127.0.0.1:2"}, {ID: "a-1", Tenant: "a", Addr: "127.0.0.1:1", Healthy: true}},
	}
	if err := cache.Save(path, snap); err != nil {
		t.Fatal(err)
	}
	st, err := cache.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != cache.Format || time.Since(st.SavedAt) > time.Minute {
		t.Errorf("state header = %d %v", st.Format, st.SavedAt)
	}
	if names := []string{st.Snapshot.Tenants[0].Name, st.Snapshot.Tenants[1].Name}; !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("tenants not sorted: %v", names)
	}
	if st.Snapshot.Instances[0].ID != "a-1" || !st.Snapshot.Instances[0].Healthy {
		t.Errorf("instances = %+v", st.Snapshot.Instances)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after Save, want only the state file", len(entries))
	}

	bad := map[string]string{
		"torn":       `{"format":1,"snapshot":{"tenants":[`,
		"format":     `{"format":99,"snapshot":{}}`,
		"bad tenant": `{"format":1,"snapshot":{"tenants":[{"name":"Bad Name"}]}}`,
		"instance":   `{"format":1,"snapshot":{"instances":[{"id":"x"}]}}`,
	}
	for name, content := range bad {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := cache.Load(p); err == nil {
			t.Errorf("Load(%s) succeeded", name)
		}
	}
	if _, err := cache.Load(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

// The backend is a real Consul agent: the package's shared dev agent, or
// one of a test's own where the test stops it.
var agent = &engines.Shared{}

func TestMain(m *testing.M) {
	code := m.Run()
	agent.Stop()
	os.Exit(code)
}

type env struct {
	agent  *engines.Consul
	prefix string
	path   string
}

// newEnv is a corner of the shared agent of the test's own.
func newEnv(t *testing.T) *env {
	return newEnvOn(t, agent.Get(t))
}

func newEnvOn(t *testing.T, a *engines.Consul) *env {
	b := make([]byte, 4)
	rand.Read(b)
	e := &env{agent: a, prefix: "cache" + hex.EncodeToString(b), path: filepath.Join(t.TempDir(), "registry.json")}
	t.Cleanup(func() { a.Client(a.Token).KV().DeleteTree(e.prefix+"/", nil) })
	return e
}

// ownEnv has an agent of its own, which the test may stop and restart.
func ownEnv(t *testing.T) *env {
	a, err := engines.StartConsul(ctxT(t, 2*time.Minute), engines.ConsulOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start a real Consul agent: %v", err)
	}
	t.Cleanup(a.Stop)
	return newEnvOn(t, a)
}

func (e *env) backend(t *testing.T) *consul.Registry {
	r, err := consul.New(consul.Config{
		API: e.agent.Config(e.agent.Token), Prefix: e.prefix + "/", ServicePrefix: e.prefix + "-app-",
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func (e *env) cached(t *testing.T) *cache.Registry {
	c, err := cache.New(e.backend(t), cache.Config{Path: e.path, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func has(s registry.Snapshot, name string) bool {
	return slices.ContainsFunc(s.Tenants, func(t registry.Tenant) bool { return t.Name == name })
}

func waitFor(t *testing.T, r registry.Registry, what string, cond func(registry.Snapshot) bool) registry.Snapshot {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	s, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for !cond(s) {
		next, err := r.Watch(ctx, s.Version)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if next.Version <= s.Version {
			t.Fatalf("Watch(%d) returned version %d", s.Version, next.Version)
		}
		s = next
	}
	return s
}

// TestRestartDuringOutage: a process that saw the registry saves it; a new
// process started while Consul is down routes from the file; when Consul
// is back the new process follows it, versions still increasing.
func TestRestartDuringOutage(t *testing.T) {
	e := ownEnv(t)
	first := e.cached(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := first.CreateTenant(ctx, tenant(t, "alpha")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, first, "alpha", func(s registry.Snapshot) bool { return has(s, "alpha") })
	if err := first.Close(); err != nil { // flushes the state file
		t.Fatal(err)
	}
	if st, err := cache.Load(e.path); err != nil || !has(st.Snapshot, "alpha") {
		t.Fatalf("state file after Close: %+v, %v", st, err)
	}

	e.agent.Stop()
	second := e.cached(t)
	snap, err := second.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot with Consul down and a state file: %v", err)
	}
	if !has(snap, "alpha") || snap.Version != 1 || !second.Serving() {
		t.Fatalf("served %+v (serving file: %v); want the file's snapshot as version 1", snap, second.Serving())
	}
	if w, err := second.Watch(ctx, 0); err != nil || w.Version != 1 {
		t.Fatalf("Watch(0) while serving the file = %d, %v", w.Version, err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := second.Watch(short, snap.Version); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch(1) while Consul is down = %v, want it to wait", err)
	}

	woke := make(chan registry.Snapshot, 1)
	go func() {
		s, err := second.Watch(ctx, snap.Version)
		if err == nil {
			woke <- s
		}
	}()
	if err := e.agent.Restart(ctx); err != nil { // empty, as a dev agent comes back
		t.Fatal(err)
	}
	if _, err := e.backend(t).CreateTenant(ctx, tenant(t, "beta")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-woke:
		if s.Version <= snap.Version {
			t.Fatalf("first live snapshot: version %d, tenants %+v", s.Version, s.Tenants)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not return once Consul was back")
	}
	if second.Serving() {
		t.Error("still serving the file after the backend answered")
	}
	waitFor(t, second, "beta", func(s registry.Snapshot) bool { return has(s, "beta") })
}

// TestNoFileNoBackend: nothing to serve is an error.
func TestNoFileNoBackend(t *testing.T) {
	// An address where nothing listens.
	e := newEnvOn(t, &engines.Consul{Addr: "127.0.0.1:1"})
	c := e.cached(t)
	if _, err := c.Snapshot(ctxT(t, 5*time.Second)); err == nil {
		t.Fatal("Snapshot succeeded with neither Consul nor a state file")
	}
	if _, err := os.Stat(e.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a state file appeared: %v", err)
	}
}

// TestLiveFirstIsTransparent: when the backend answers first, versions are
// the backend's and the file follows it.
func TestLiveFirstIsTransparent(t *testing.T) {
	e := newEnv(t)
	c := e.cached(t)
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.CreateTenant(ctx, tenant(t, "gamma")); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, c, "gamma", func(s registry.Snapshot) bool { return has(s, "gamma") })
	if c.Serving() {
		t.Fatal("serving the file with a live backend")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cache.Load(e.path)
		if err == nil && has(st.Snapshot, "gamma") && st.Snapshot.Version == s.Version {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file not updated: %+v, %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestContract: the wrapper is a registry.Registry like any other.
func TestContract(t *testing.T) {
	servers := map[registry.Registry]*env{}
	registrytest.Run(t, registrytest.Harness{
		New: func(t *testing.T) registry.Registry {
			e := newEnv(t)
			c := e.cached(t)
			servers[c] = e
			return c
		},
		Second: func(t *testing.T, first registry.Registry) registry.Registry {
			return servers[first].cached(t)
		},
	})
}
