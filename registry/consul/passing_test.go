package consul_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// fakeApp is an app instance: /readyz answers ready (200) or not (503),
// every other path answers its name.
func fakeApp(t *testing.T, name string, ready bool) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func addrOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// routedProxy runs a proxy over r without lookups (no hold: no instance
// is a 503 at once) and returns a function that GETs / on a host through
// it.
func routedProxy(t *testing.T, r registry.Registry) func(host string) (int, string) {
	t.Helper()
	get, _ := frontProxy(t, r, proxy.Config{})
	return get
}

func instanceIs(id string, healthy bool) func(registry.Snapshot) bool {
	return func(s registry.Snapshot) bool {
		return slices.ContainsFunc(s.Instances, func(in registry.Instance) bool { return in.ID == id && in.Healthy == healthy })
	}
}

// TestRegisteredPassingIsRoutedAtOnce: with a check interval of ten
// minutes, an instance registered by a caller that saw its /readyz pass
// (Healthy) is healthy and routed long before the agent's first check run
// could have made it so; an instance registered without that word and
// whose /readyz fails is never routed, and its tenant's host never reaches
// the other tenant's app.
func TestRegisteredPassingIsRoutedAtOnce(t *testing.T) {
	_, r, _ := newReal(t, func(c *consul.Config) { c.CheckInterval = 10 * time.Minute })
	ctx := ctxT(t, time.Minute)
	a, b := tenant(t, "ready"), tenant(t, "starting")
	for _, tn := range []registry.Tenant{a, b} {
		if _, err := r.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	readyApp, startingApp := fakeApp(t, "app of ready", true), fakeApp(t, "app of starting", false)
	get := routedProxy(t, r)

	if err := r.RegisterInstance(ctx, registry.Instance{ID: "starting-1", Tenant: b.Name, Addr: addrOf(startingApp)}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterInstance(ctx, registry.Instance{ID: "ready-1", Tenant: a.Name, Addr: addrOf(readyApp), Healthy: true}); err != nil {
		t.Fatal(err)
	}
	snap := waitSnapWithin(t, r, 15*time.Second, "the instance registered passing to be healthy", instanceIs("ready-1", true))
	if !instanceIs("starting-1", false)(snap) {
		t.Errorf("instance registered without Healthy, whose /readyz fails, is not listed unhealthy: %+v", snap.Instances)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(a.PrimaryHost)
		if code == http.StatusOK && body == "app of ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s through the proxy: %d %q, want 200 from its app", a.PrimaryHost, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(b.PrimaryHost); code != http.StatusServiceUnavailable || strings.Contains(body, "app of") {
		t.Errorf("%s (instance not ready) through the proxy: %d %q, want 503 from the proxy", b.PrimaryHost, code, body)
	}
}

// TestPassingInstanceThatDiesGoesCritical: registering passing does not
// stop the agent's check: when the app stops answering, the instance goes
// critical and the proxy stops routing to it.
func TestPassingInstanceThatDiesGoesCritical(t *testing.T) {
	_, r, _ := newReal(t) // check every second
	ctx := ctxT(t, time.Minute)
	a := tenant(t, "mortal")
	if _, err := r.CreateTenant(ctx, a); err != nil {
		t.Fatal(err)
	}
	app := fakeApp(t, "app of mortal", true)
	get := routedProxy(t, r)
	if err := r.RegisterInstance(ctx, registry.Instance{ID: "mortal-1", Tenant: a.Name, Addr: addrOf(app), Healthy: true}); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, r, "the instance healthy", instanceIs("mortal-1", true))
	app.Close()
	waitSnapWithin(t, r, time.Minute, "the dead instance critical", func(s registry.Snapshot) bool {
		return !instanceIs("mortal-1", true)(s)
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(a.PrimaryHost)
		if code == http.StatusServiceUnavailable && !strings.Contains(body, "app of") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s through the proxy after its app died: %d %q, want the proxy's 503", a.PrimaryHost, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeepRegisteredProbesReadyz: KeepRegistered (self-registration)
// ignores the instance's own Healthy claim and registers the check passing
// only after its own probe of /readyz passed.
func TestKeepRegisteredProbesReadyz(t *testing.T) {
	_, r, _ := newReal(t, func(c *consul.Config) { c.CheckInterval = 10 * time.Minute })
	ctx := ctxT(t, time.Minute)
	for _, tc := range []struct {
		name  string
		ready bool
	}{{"keepready", true}, {"keepstarting", false}} {
		tn := tenant(t, tc.name)
		if _, err := r.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		app := fakeApp(t, tc.name, tc.ready)
		kctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- r.KeepRegistered(kctx, registry.Instance{ID: tc.name + "-1", Tenant: tn.Name, Addr: addrOf(app), Healthy: true}, time.Minute)
		}()
		t.Cleanup(func() { cancel(); <-done })
		snap := waitSnapWithin(t, r, 15*time.Second, tc.name+" registered", func(s registry.Snapshot) bool {
			return instanceIs(tc.name+"-1", true)(s) || instanceIs(tc.name+"-1", false)(s) && !tc.ready
		})
		if got := instanceIs(tc.name+"-1", true)(snap); got != tc.ready {
			t.Errorf("%s (/readyz ready: %v) registered healthy: %v", tc.name, tc.ready, got)
		}
	}
}
