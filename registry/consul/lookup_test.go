package consul_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// Lookups on a miss (issue 11): the proxy asks the registry for one host
// when its table has no route (or no healthy instance) for it. These tests
// run a real proxy over a real agent. A "frozen" watcher answers each of
// its blocking queries once and then waits a thousand seconds for the
// next: whatever it routes after that, only a lookup can have brought.

func frozen(c *consul.Config) { c.MaxQueryRate = 0.001 }

// lookupProxy runs a proxy with lookups over r (no hold: no instance is a
// 503 at once) and returns a GET of / on a host through it, and the
// proxy's metrics.
func lookupProxy(t *testing.T, r *consul.Registry, perSecond float64) (func(host string) (int, string), *prometheus.Registry) {
	t.Helper()
	return frontProxy(t, r, proxy.Config{Lookup: r, LookupRate: perSecond})
}

// frontProxy runs a proxy over r with cfg (no hold, its own metrics,
// logs discarded) until the test ends, and returns a GET of / on a host
// through it (safe from any goroutine) and the proxy's metrics. It returns
// once the proxy has its first table.
func frontProxy(t *testing.T, r registry.Registry, cfg proxy.Config) (func(host string) (int, string), *prometheus.Registry) {
	t.Helper()
	metrics := prometheus.NewRegistry()
	cfg.Logger, cfg.HoldTimeout, cfg.Registerer = slog.New(slog.DiscardHandler), -1, metrics
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, r) }()
	t.Cleanup(func() { cancel(); <-done })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	get := func(host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Host = host
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Errorf("GET %s through the proxy: %v", host, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64)) // apps answer their name; pages are longer
		return resp.StatusCode, string(b)
	}
	// The first table (the proxy waits for it before answering anything).
	waitUntil(t, "the proxy's first table", func() bool { code, _ := get("first.table.localhost"); return code == http.StatusNotFound })
	return get, metrics
}

// TestLookupRoutesBeforeTheWatch: with a frozen watcher, a tenant created
// and registered after the proxy started is routed at its first request,
// and stays routed (the watcher's older state does not undo the lookup).
func TestLookupRoutesBeforeTheWatch(t *testing.T) {
	sp, writer, _ := newReal(t)
	_, r, _ := newOn(t, sp, frozen)
	get, _ := lookupProxy(t, r, 10)
	ctx := ctxT(t, time.Minute)
	tn := tenant(t, "early")
	createServing(ctx, t, writer, tn, "")
	for i := range 20 {
		if code, body := get(tn.PrimaryHost); code != http.StatusOK || body != "app of early" {
			t.Fatalf("request %d for %s: %d %q, want 200 from its app", i+1, tn.PrimaryHost, code, body)
		}
	}
}

// TestLookupDoesNotOutliveNewerData: with a slow watcher (one query a
// second per list), a lookup routes a new tenant at once, the watcher's
// older answers arriving meanwhile do not flap it back to 404, and once the
// instance is deregistered the route goes: a pin gives way to newer data.
func TestLookupDoesNotOutliveNewerData(t *testing.T) {
	sp, writer, _ := newReal(t)
	_, r, _ := newOn(t, sp, func(c *consul.Config) { c.MaxQueryRate = 1 })
	get, _ := lookupProxy(t, r, 10)
	ctx := ctxT(t, time.Minute)
	tn := tenant(t, "pinned")
	createServing(ctx, t, writer, tn, "")
	until := time.Now().Add(3 * time.Second) // several watcher answers
	for n := 1; time.Now().Before(until); n++ {
		if code, body := get(tn.PrimaryHost); code != http.StatusOK || body != "app of pinned" {
			t.Fatalf("request %d for %s: %d %q, want 200 from its app every time", n, tn.PrimaryHost, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := writer.DeregisterInstance(ctx, tn.Name+"-1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deregistered instance to leave the route", func() bool {
		code, body := get(tn.PrimaryHost)
		return code == http.StatusServiceUnavailable && !strings.Contains(body, "app of")
	})
}

// TestLookupIsolation: whatever a lookup reads, it routes a host only to
// the instances of the tenant whose record lists it, only through that
// tenant's own service name, only when that tenant is routed. Frozen
// watcher: every answer below comes from a lookup.
func TestLookupIsolation(t *testing.T) {
	sp, writer, _ := newReal(t)
	_, r, _ := newOn(t, sp, frozen)
	get, _ := lookupProxy(t, r, 50)
	ctx := ctxT(t, 2*time.Minute)
	agentAPI := sp.agent.Client(sp.token).Agent()
	w := tenantWriter{ctx, writer}
	create, instance := w.create, w.instance
	// impostor registers, straight with the agent, a passing service
	// named name that claims tenant claim in its meta and tags.
	impostor := func(t *testing.T, name, claim, body string) {
		t.Helper()
		app := fakeApp(t, body, true)
		host, port := splitAddr(t, addrOf(app))
		if err := agentAPI.ServiceRegister(&api.AgentServiceRegistration{
			ID: sp.servicePrefix + "impostor-" + randomHex(t), Name: name, Address: host, Port: port,
			Tags: []string{consul.ServiceTag, "tenant-" + claim}, Meta: map[string]string{consul.MetaTenant: claim},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// setup returns the host to request
		setup    func(t *testing.T) string
		wantCode int
		wantBody string // "" : none of the apps' bodies
	}{
		{"routed (control)", func(t *testing.T) string {
			tn := create(t, tenant(t, "iso-ok"))
			instance(t, tn.Name, "app of iso-ok")
			return tn.PrimaryHost
		}, http.StatusOK, "app of iso-ok"},
		{"another tenant's service claiming it in meta and tags", func(t *testing.T) string {
			a, b := create(t, tenant(t, "iso-a")), create(t, tenant(t, "iso-b"))
			impostor(t, sp.servicePrefix+b.Name, a.Name, "app of iso-b")
			return a.PrimaryHost
		}, http.StatusServiceUnavailable, ""},
		{"its service name in other letter case", func(t *testing.T) string {
			a := create(t, tenant(t, "iso-case"))
			impostor(t, sp.servicePrefix+strings.ToUpper(a.Name), a.Name, "app of the impostor")
			return a.PrimaryHost
		}, http.StatusServiceUnavailable, ""},
		{"the service of a tenant whose name extends its own", func(t *testing.T) string {
			a, b := create(t, tenant(t, "iso-ext")), create(t, tenant(t, "iso-ext-x"))
			instance(t, b.Name, "app of iso-ext-x")
			return a.PrimaryHost
		}, http.StatusServiceUnavailable, ""},
		{"deleted tenant", func(t *testing.T) string {
			tn := create(t, tenant(t, "iso-deleted"))
			instance(t, tn.Name, "app of iso-deleted")
			if _, err := writer.MarkDeleted(ctx, tn.Name, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return tn.PrimaryHost
		}, http.StatusNotFound, ""},
		{"suspended tenant", func(t *testing.T) string {
			tn := create(t, tenant(t, "iso-suspended"))
			instance(t, tn.Name, "app of iso-suspended")
			if _, err := writer.SetState(ctx, tn.Name, registry.StateSuspended); err != nil {
				t.Fatal(err)
			}
			return tn.PrimaryHost
		}, http.StatusServiceUnavailable, ""},
		{"tenant being created", func(t *testing.T) string {
			tn := tenant(t, "iso-creating")
			tn.State = registry.StateCreating
			tn = create(t, tn)
			instance(t, tn.Name, "app of iso-creating")
			return tn.PrimaryHost
		}, http.StatusNotFound, ""},
		{"host key whose tenant record does not list the host", func(t *testing.T) string {
			tn := create(t, tenant(t, "iso-stray"))
			instance(t, tn.Name, "app of iso-stray")
			kv := sp.agent.Client(sp.token).KV()
			if _, err := kv.Put(&api.KVPair{Key: sp.prefix + "hosts/stray.school.localhost", Value: []byte(tn.Name)}, nil); err != nil {
				t.Fatal(err)
			}
			return "stray.school.localhost"
		}, http.StatusNotFound, ""},
		{"host key naming no tenant", func(t *testing.T) string {
			kv := sp.agent.Client(sp.token).KV()
			if _, err := kv.Put(&api.KVPair{Key: sp.prefix + "hosts/ghost.school.localhost", Value: []byte("iso-ok")}, nil); err != nil {
				t.Fatal(err)
			}
			return "ghost.school.localhost"
		}, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.setup(t)
			for i := range 3 {
				code, body := get(host)
				if code != tc.wantCode || tc.wantBody != "" && body != tc.wantBody || tc.wantBody == "" && strings.Contains(body, "app of") {
					t.Fatalf("request %d for %s: %d %q, want %d %q", i+1, host, code, body, tc.wantCode, tc.wantBody)
				}
			}
		})
	}
}

// TestLookupHostMoved: a host removed from A and added to B, while the
// proxy routes it to A: once it has answered from B's app, it never
// answers from A's again.
func TestLookupHostMoved(t *testing.T) {
	sp, writer, _ := newReal(t)
	_, r, _ := newOn(t, sp)
	get, _ := lookupProxy(t, r, 50)
	ctx := ctxT(t, 2*time.Minute)
	const shared = "moving.school.localhost"
	a, b := tenant(t, "mv-a", "mv-a.school.localhost", shared), tenant(t, "mv-b")
	for _, tn := range []registry.Tenant{a, b} {
		createServing(ctx, t, writer, tn, "")
	}
	waitUntil(t, shared+" routed to A", func() bool { _, body := get(shared); return body == "app of mv-a" })
	if _, err := writer.RemoveHost(ctx, a.Name, shared); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.AddHost(ctx, b.Name, shared); err != nil {
		t.Fatal(err)
	}
	seenB, afterB := false, 0
	deadline := time.Now().Add(30 * time.Second)
	for afterB < 100 {
		code, body := get(shared)
		switch {
		case body == "app of mv-b":
			seenB = true
		case seenB:
			t.Fatalf("%s answered %d %q after it had answered from B's app", shared, code, body)
		case time.Now().After(deadline):
			t.Fatalf("%s still answers %d %q 30s after the move to B", shared, code, body)
		}
		if seenB {
			afterB++
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hostCounter counts the reads of host keys (one per lookup).
type hostCounter struct {
	base   http.RoundTripper
	prefix string
	reads  atomic.Int64
}

func (c *hostCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/"+c.prefix+"hosts/") {
		c.reads.Add(1)
	}
	return c.base.RoundTrip(r)
}

// TestLookupFlood: a flood of unknown hosts (and of malformed ones, and
// of one host over and over) makes no more registry lookups than the rate
// limit allows, answers every request 404 (400 for malformed), and adds no
// route.
func TestLookupFlood(t *testing.T) {
	const perSecond = 5
	sp, writer, _ := newReal(t)
	r, counter := countedRegistry(t, sp)
	ctx := ctxT(t, time.Minute)
	tn := tenant(t, "flooded")
	createServing(ctx, t, writer, tn, "")
	get, metrics := lookupProxy(t, r, perSecond)
	waitUntil(t, "the tenant routed", func() bool { code, _ := get(tn.PrimaryHost); return code == http.StatusOK })
	routes := metricValue(t, metrics, proxy.MetricRoutes, "")

	start := time.Now()
	before := counter.reads.Load()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				host := fmt.Sprintf("x%d-%d-%s.school.localhost", w, i, randomHex(t))
				want := http.StatusNotFound
				switch i % 4 {
				case 1:
					host = "same.unknown.localhost" // one host, over and over
				case 2:
					host, want = "bad_host!"+host, http.StatusBadRequest
				}
				if code, body := get(host); code != want || strings.Contains(body, "app of") {
					bad.Add(1)
					t.Errorf("GET %s: %d %q, want %d from the proxy", host, code, body, want)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	reads := counter.reads.Load() - before
	allowed := int64(perSecond + perSecond*elapsed.Seconds() + 1)
	t.Logf("320 requests in %v: %d host lookups (allowed %d), limited %v", elapsed.Round(time.Millisecond), reads, allowed,
		metricValue(t, metrics, proxy.MetricHostLookups, proxy.LookupLimited))
	if reads > allowed {
		t.Errorf("%d host lookups in %v with a limit of %d a second", reads, elapsed, perSecond)
	}
	if got := metricValue(t, metrics, proxy.MetricRoutes, ""); got != routes {
		t.Errorf("routes after the flood = %v, want %v", got, routes)
	}
	if metricValue(t, metrics, proxy.MetricHostLookups, proxy.LookupLimited) <= 0 {
		t.Errorf("no lookup was limited: the flood did not reach the limit")
	}
	if code, body := get(tn.PrimaryHost); code != http.StatusOK || body != "app of flooded" {
		t.Errorf("the tenant after the flood: %d %q", code, body)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	var port int
	if _, err := fmt.Sscan(addr[i+1:], &port); err != nil {
		t.Fatal(err)
	}
	return addr[:i], port
}

// TestLookupOncePerHost: many requests for one unknown host, at once and
// then one after the other, make one lookup (singleflight, then the
// negative cache), or one more per negative-cache period on a slow machine.
func TestLookupOncePerHost(t *testing.T) {
	sp, _, _ := newReal(t)
	r, counter := countedRegistry(t, sp)
	get, metrics := lookupProxy(t, r, 1000)
	const host = "nobody.school.localhost"
	start := time.Now()
	before := counter.reads.Load()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := get(host); code != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", host, code)
			}
		}()
	}
	wg.Wait()
	for range 20 {
		if code, _ := get(host); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", host, code)
		}
	}
	reads := counter.reads.Load() - before
	allowed := 1 + int64(time.Since(start)/proxy.DefaultLookupNegativeTTL)
	t.Logf("40 requests for one host in %v: %d lookups (allowed %d), %v answered from the negative cache",
		time.Since(start).Round(time.Millisecond), reads, allowed, metricValue(t, metrics, proxy.MetricHostLookups, proxy.LookupCached))
	if reads < 1 || reads > allowed {
		t.Errorf("%d lookups for one host, want 1 to %d", reads, allowed)
	}
}

// createServing creates tn through writer and registers one healthy
// instance of it, an app that answers body ("app of NAME" when "").
func createServing(ctx context.Context, t *testing.T, writer registry.Registry, tn registry.Tenant, body string) {
	t.Helper()
	if _, err := writer.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if body == "" {
		body = "app of " + tn.Name
	}
	app := fakeApp(t, body, true)
	if err := writer.RegisterInstance(ctx, registry.Instance{ID: tn.Name + "-1", Tenant: tn.Name, Addr: addrOf(app), Healthy: true}); err != nil {
		t.Fatal(err)
	}
}

// countedRegistry is a registry on sp whose Consul reads of host keys are
// counted.
func countedRegistry(t *testing.T, sp space) (*consul.Registry, *hostCounter) {
	t.Helper()
	counter := &hostCounter{base: http.DefaultTransport, prefix: sp.prefix}
	cfg := sp.config()
	apiCfg := *cfg.API
	apiCfg.HttpClient = &http.Client{Transport: counter}
	cfg.API = &apiCfg
	return mustNew(t, cfg), counter
}
