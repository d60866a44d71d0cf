package consul_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/consul/consultest"
	"github.com/campus-saas/campus/registry/registrytest"
)

// harness runs the contract suite on Registries built from the Config that
// open returns; Second opens another Registry with the same Config, as
// another process would.
func harness(open func(t *testing.T) consul.Config) registrytest.Harness {
	var mu sync.Mutex
	cfgs := map[registry.Registry]consul.Config{}
	newReg := func(t *testing.T, cfg consul.Config) registry.Registry {
		r := mustNew(t, cfg)
		mu.Lock()
		cfgs[r] = cfg
		mu.Unlock()
		return r
	}
	return registrytest.Harness{
		New: func(t *testing.T) registry.Registry { return newReg(t, open(t)) },
		Second: func(t *testing.T, first registry.Registry) registry.Registry {
			mu.Lock()
			cfg := cfgs[first]
			mu.Unlock()
			return newReg(t, cfg)
		},
	}
}

func mustNew(t testing.TB, cfg consul.Config) *consul.Registry {
	t.Helper()
	r, err := consul.New(cfg)
	if err != nil {
		t.Fatalf("consul.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fakeConfig is a Config for a consultest server, with fast checks and
// retries.
func fakeConfig(srv *consultest.Server) consul.Config {
	return consul.Config{
		API:           &api.Config{Address: srv.Addr()},
		CheckInterval: 50 * time.Millisecond,
		RetryMin:      20 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		Logger:        quiet,
	}
}

// quiet logs warnings and errors only.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func TestContractFakeServer(t *testing.T) {
	registrytest.Run(t, harness(func(t *testing.T) consul.Config {
		return fakeConfig(consultest.NewServer(t))
	}))
}

// TestContractRealAgent runs the same suite against the agent named by
// CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN …), under a prefix and service
// name of its own that it removes afterwards.
func TestContractRealAgent(t *testing.T) {
	if os.Getenv("CONSUL_HTTP_ADDR") == "" {
		t.Skip("real-agent contract run skipped: CONSUL_HTTP_ADDR is not set, so no Consul agent is configured")
	}
	run := "campustest-" + randomHex(t)
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := client.KV().DeleteTree(run+"/", nil); err != nil {
			t.Errorf("cleanup %s/: %v", run, err)
		}
	})
	registrytest.Run(t, harness(func(t *testing.T) consul.Config {
		return consul.Config{
			Prefix:        run + "/",
			ServiceName:   run,
			CheckInterval: time.Second, // Consul's minimum
			RetryMax:      time.Second,
			Logger:        quiet,
		}
	}))
}

func randomHex(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newFake starts a fake agent and a Registry on it with its own metrics.
func newFake(t *testing.T, tweak ...func(*consul.Config)) (*consultest.Server, *consul.Registry, *prometheus.Registry) {
	t.Helper()
	srv := consultest.NewServer(t)
	cfg := fakeConfig(srv)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	for _, f := range tweak {
		f(&cfg)
	}
	return srv, mustNew(t, cfg), reg
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func tenant(t testing.TB, name string, hosts ...string) registry.Tenant {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{name + ".school.localhost"}
	}
	tn, err := registry.NewTenant(name, hosts, "")
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// waitSnap watches r until cond holds.
func waitSnap(t *testing.T, r registry.Registry, what string, cond func(registry.Snapshot) bool) registry.Snapshot {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	snap, err := r.Watch(ctx, 0)
	if err != nil {
		t.Fatalf("Watch(0): %v", err)
	}
	for !cond(snap) {
		if snap, err = r.Watch(ctx, snap.Version); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	return snap
}

func hasTenant(name string) func(registry.Snapshot) bool {
	return func(s registry.Snapshot) bool {
		return slices.ContainsFunc(s.Tenants, func(t registry.Tenant) bool { return t.Name == name })
	}
}

// metricValue reads one sample from a Prometheus registry; label may be
// empty for unlabelled metrics.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHostRaceTxn races many handles creating tenants over a small pool of
// hosts: whatever wins, no host has two owners, every host key names a
// tenant that lists it, and losers left nothing behind.
func TestHostRaceTxn(t *testing.T) {
	srv := consultest.NewServer(t)
	pool := []string{"a.race.localhost", "b.race.localhost", "c.race.localhost", "d.race.localhost"}
	const n = 16
	errs := make([]error, n)
	tenants := make([]registry.Tenant, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		// Tenant i wants two hosts of the pool, overlapping its neighbours.
		tenants[i] = tenant(t, fmt.Sprintf("race%d", i), pool[i%4], pool[(i+1+i/4)%4])
		r := mustNew(t, fakeConfig(srv))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = r.CreateTenant(context.Background(), tenants[i])
		}()
	}
	close(start)
	wg.Wait()

	owner := map[string]string{}
	winners := 0
	for i, err := range errs {
		if err != nil {
			var ht *registry.HostTakenError
			if !errors.As(err, &ht) {
				t.Errorf("%s: error %v, want *HostTakenError", tenants[i].Name, err)
			}
			continue
		}
		winners++
		for _, h := range tenants[i].Hosts {
			if o, ok := owner[h]; ok {
				t.Fatalf("host %s owned by both %s and %s", h, o, tenants[i].Name)
			}
			owner[h] = tenants[i].Name
		}
	}
	if winners == 0 {
		t.Fatalf("nobody won: %v", errs)
	}
	c, err := api.NewClient(&api.Config{Address: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	pairs, _, err := c.KV().List("campus/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range pairs {
		keys = append(keys, p.Key)
	}
	var want []string
	for h, o := range owner {
		want = append(want, "campus/hosts/"+h)
		want = append(want, "campus/tenants/"+o)
		hp, _, _ := c.KV().Get("campus/hosts/"+h, nil)
		if hp == nil || string(hp.Value) != o {
			t.Errorf("host key %s = %v, want owner %s", h, hp, o)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(keys, want) {
		t.Errorf("KV after the race:\n %q\nwant\n %q", keys, want)
	}
	t.Logf("%d of %d creates won; %d transactions", winners, n, srv.Requests("/v1/txn"))
}

// TestWatchWakesOnKVWrite measures how long Watch takes to return after a
// tenant key is written straight into Consul's KV.
func TestWatchWakesOnKVWrite(t *testing.T) {
	srv, r, _ := newFake(t)
	ctx := ctxT(t, 10*time.Second)
	snap, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := api.NewClient(&api.Config{Address: srv.Addr()})
	done := make(chan time.Time, 1)
	go func() {
		if _, err := r.Watch(ctx, snap.Version); err == nil {
			done <- time.Now()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the watcher block; its wake-up is what is measured
	val, _ := json.Marshal(tenant(t, "direct"))
	start := time.Now()
	if _, err := c.KV().Put(&api.KVPair{Key: "campus/tenants/direct", Value: val}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-done:
		t.Logf("Watch returned %v after the KV write started", at.Sub(start))
	case <-ctx.Done():
		t.Fatal("Watch did not return after a KV write")
	}
}

// TestUnchangedWriteKeepsVersion rewrites a tenant key with the same value
// (Consul's index moves, the content does not): the version stays.
func TestUnchangedWriteKeepsVersion(t *testing.T) {
	srv, r, reg := newFake(t)
	ctx := ctxT(t, 10*time.Second)
	created, err := r.CreateTenant(ctx, tenant(t, "same"))
	if err != nil {
		t.Fatal(err)
	}
	snap := waitSnap(t, r, "tenant", hasTenant("same"))

	c, _ := api.NewClient(&api.Config{Address: srv.Addr()})
	p, _, err := c.KV().Get("campus/tenants/same", nil)
	if err != nil || p == nil {
		t.Fatalf("read back: %v %v", p, err)
	}
	// Same content, re-encoded (another writer may format differently).
	val, _ := json.MarshalIndent(created, "", "  ")
	if _, err := c.KV().Put(&api.KVPair{Key: p.Key, Value: val}, nil); err != nil {
		t.Fatal(err)
	}
	written := float64(srv.Index())
	waitUntil(t, "the watcher to see the rewrite", func() bool {
		return metricValue(t, reg, consul.MetricLastIndex, "kv") >= written
	})
	again, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != snap.Version {
		t.Fatalf("version moved from %d to %d on a content-unchanged write", snap.Version, again.Version)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if s, err := r.Watch(short, snap.Version); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch(%d) = version %d, %v; want no new version", snap.Version, s.Version, err)
	}
}

// TestConsulDownAndBack: while Consul is down Watch serves the last
// snapshot and errors are counted; when it is back a new tenant appears
// in the same Registry.
func TestConsulDownAndBack(t *testing.T) {
	srv, r, reg := newFake(t)
	ctx := ctxT(t, 20*time.Second)
	if _, err := r.CreateTenant(ctx, tenant(t, "before")); err != nil {
		t.Fatal(err)
	}
	last := waitSnap(t, r, "tenant before the outage", hasTenant("before"))

	srv.Stop()
	waitUntil(t, "watch errors counted for both sources", func() bool {
		return metricValue(t, reg, consul.MetricWatchErrors, "kv") > 0 && metricValue(t, reg, consul.MetricWatchErrors, "health") > 0
	})
	got, err := r.Watch(ctx, 0)
	if err != nil || got.Version != last.Version || !hasTenant("before")(got) {
		t.Fatalf("Watch(0) while down = version %d, %v; want the last snapshot %d", got.Version, err, last.Version)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := r.Watch(short, last.Version); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch(%d) while down = %v; want it to keep waiting", last.Version, err)
	}
	if _, err := r.Snapshot(short); err == nil {
		t.Fatal("Snapshot succeeded while Consul is down; want an error")
	}

	srv.Start()
	other := mustNew(t, fakeConfig(srv))
	if _, err := other.CreateTenant(ctx, tenant(t, "after")); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, r, "tenant created after the outage", hasTenant("after"))
}

// TestStaleQueryReconnects: an agent that accepts but never answers is
// abandoned after WatchWait plus margin, counted as a reconnect, and the
// watcher recovers when answers come again.
func TestStaleQueryReconnects(t *testing.T) {
	srv, r, reg := newFake(t, func(c *consul.Config) {
		c.WatchWait = 100 * time.Millisecond
		c.StaleMargin = 100 * time.Millisecond
	})
	waitSnap(t, r, "first snapshot", func(registry.Snapshot) bool { return true })
	srv.Hang(true)
	waitUntil(t, "a reconnect", func() bool { return metricValue(t, reg, consul.MetricWatchReconnects, "") > 0 })
	srv.Hang(false)
	other := mustNew(t, fakeConfig(srv))
	if _, err := other.CreateTenant(ctxT(t, 5*time.Second), tenant(t, "fresh")); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, r, "tenant after the hang", hasTenant("fresh"))
	if v := metricValue(t, reg, consul.MetricLastUpdate, ""); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("%s = %v, want a recent Unix time", consul.MetricLastUpdate, v)
	}
}

// TestIndexBackwardsResets restores an older raft snapshot: indexes go
// backwards, the watcher follows the restored state and then sees writes
// made at indexes below the ones it had seen.
func TestIndexBackwardsResets(t *testing.T) {
	// A query that reaches Consul just after the restore, with the old high
	// index, blocks for its whole wait (as on a real server); a short wait
	// bounds that. Without the reset, every answer below the old index
	// would be dropped and the restored state never shown.
	srv, r, _ := newFake(t, func(c *consul.Config) { c.WatchWait = 300 * time.Millisecond })
	ctx := ctxT(t, 10*time.Second)
	if _, err := r.CreateTenant(ctx, tenant(t, "kept")); err != nil {
		t.Fatal(err)
	}
	cp := srv.Checkpoint()
	for _, n := range []string{"lost1", "lost2", "lost3"} {
		if _, err := r.CreateTenant(ctx, tenant(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	waitSnap(t, r, "tenants before the restore", hasTenant("lost3"))
	high := srv.Index()

	srv.Restore(cp)
	waitSnap(t, r, "restored state", func(s registry.Snapshot) bool { return !hasTenant("lost3")(s) && hasTenant("kept")(s) })
	if _, err := r.CreateTenant(ctx, tenant(t, "new")); err != nil {
		t.Fatal(err)
	}
	if srv.Index() >= high {
		t.Fatalf("test setup: index %d after restore is not below %d", srv.Index(), high)
	}
	waitSnap(t, r, "tenant written below the old index", hasTenant("new"))
}

// TestInstanceRegistration checks what the agent is told.
func TestInstanceRegistration(t *testing.T) {
	srv, r, _ := newFake(t)
	ctx := ctxT(t, 10*time.Second)
	in := registry.Instance{ID: "nairobi-1", Tenant: "nairobi", Addr: "127.0.0.1:9001", Healthy: true}
	if err := r.RegisterInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	c, _ := api.NewClient(&api.Config{Address: srv.Addr()})
	svc, _, err := c.Agent().Service("nairobi-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Service != consul.DefaultServiceName || svc.Address != "127.0.0.1" || svc.Port != 9001 ||
		svc.Meta[consul.MetaTenant] != "nairobi" || !slices.Equal(svc.Tags, []string{"tenant-nairobi"}) {
		t.Errorf("agent service = %+v", svc)
	}
	checks, _, err := c.Health().Checks(consul.DefaultServiceName, nil)
	if err == nil && len(checks) > 0 && checks[0].Status != api.HealthCritical {
		t.Errorf("a new instance's check is %s, want critical until /readyz answers", checks[0].Status)
	}
	// Nothing listens on :9001: the instance is listed, unhealthy.
	waitSnap(t, r, "unhealthy instance", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0] == registry.Instance{ID: "nairobi-1", Tenant: "nairobi", Addr: "127.0.0.1:9001"}
	})

	for _, bad := range []registry.Instance{
		{ID: "", Tenant: "nairobi", Addr: "127.0.0.1:1"},
		{ID: "a/b", Tenant: "nairobi", Addr: "127.0.0.1:1"},
		{ID: "x", Tenant: "Bad Name", Addr: "127.0.0.1:1"},
		{ID: "x", Tenant: "nairobi", Addr: "127.0.0.1"},
		{ID: "x", Tenant: "nairobi", Addr: ":80"},
		{ID: "x", Tenant: "nairobi", Addr: "127.0.0.1:0"},
	} {
		if err := r.RegisterInstance(ctx, bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("RegisterInstance(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestKeepRegistered: registers, re-registers after the agent forgets
// (restart), deregisters when the context ends.
func TestKeepRegistered(t *testing.T) {
	srv, r, _ := newFake(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(app.Close)
	in := registry.Instance{ID: "accra-1", Tenant: "accra", Addr: app.Listener.Addr().String()}
	c, _ := api.NewClient(&api.Config{Address: srv.Addr()})
	known := func() bool { _, _, err := c.Agent().Service(in.ID, nil); return err == nil }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.KeepRegistered(ctx, in, 20*time.Millisecond) }()
	t.Cleanup(cancel)

	waitSnap(t, r, "healthy instance", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0].Healthy
	})
	srv.ForgetServices()
	before := srv.Requests("/v1/agent/service/register")
	waitUntil(t, "re-registration after the agent forgot", func() bool {
		return srv.Requests("/v1/agent/service/register") > before && known()
	})
	waitSnap(t, r, "instance back and healthy", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0].Healthy
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("KeepRegistered returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KeepRegistered did not return after cancel")
	}
	if known() {
		t.Fatal("instance still registered after KeepRegistered returned")
	}

	if err := r.KeepRegistered(context.Background(), registry.Instance{ID: "x"}, time.Second); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("KeepRegistered(invalid) = %v, want ErrInvalid", err)
	}
}

// TestClose: Watch callers wake with ErrClosed.
func TestClose(t *testing.T) {
	_, r, _ := newFake(t)
	snap := waitSnap(t, r, "first snapshot", func(registry.Snapshot) bool { return true })
	errc := make(chan error, 1)
	go func() { _, err := r.Watch(context.Background(), snap.Version); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, consul.ErrClosed) {
			t.Fatalf("Watch after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still blocked after Close")
	}
	if _, err := r.Snapshot(context.Background()); !errors.Is(err, consul.ErrClosed) {
		t.Fatalf("Snapshot after Close = %v", err)
	}
}

// propagation writes n tenant changes one after another and returns how
// long each took from the start of the write to Watch returning it.
func propagation(tb testing.TB, r, writer *consul.Registry, n int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	snap, err := r.Snapshot(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	lat := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("prop%d", i)
		start := time.Now()
		if _, err := writer.CreateTenant(ctx, tenant(tb, name)); err != nil {
			tb.Fatal(err)
		}
		for !hasTenant(name)(snap) {
			if snap, err = r.Watch(ctx, snap.Version); err != nil {
				tb.Fatal(err)
			}
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// TestPropagationLatency logs (does not assert) KV write → Watch latency
// over a few hundred changes.
func TestPropagationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, tc := range []struct {
		name string
		rate float64
	}{{"default rate limit", 0}, {"unlimited", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, r, _ := newFake(t, func(c *consul.Config) { c.MaxQueryRate = tc.rate })
			lat := propagation(t, r, mustNew(t, fakeConfig(srv)), 300)
			t.Logf("300 changes: p50 %v, p99 %v, max %v", pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1])
		})
	}
}

func BenchmarkPropagation(b *testing.B) {
	for _, tc := range []struct {
		name string
		rate float64
	}{{"default", 0}, {"unlimited", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := consultest.NewServer(b)
			cfg := fakeConfig(srv)
			cfg.MaxQueryRate = tc.rate
			r := mustNew(b, cfg)
			writer := mustNew(b, fakeConfig(srv))
			b.ResetTimer()
			lat := propagation(b, r, writer, b.N)
			b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99-ms")
		})
	}
}
