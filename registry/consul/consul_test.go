package consul_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/registrytest"
)

// Every test here runs against a real Consul agent (v1.16.3, built by
// internal/engines): one shared agent for the package, and another with
// ACLs (default deny) for the ACL tests, each test under a KV prefix and
// service prefix of its own. Both are servers with Consul's default limits
// (-server -bootstrap-expect 1, as an operator's agent runs; issue 24:
// 200 connections per client address), not -dev agents. Tests that stop or restart an agent start one
// of their own. With CONSUL_HTTP_ADDR set, the shared agent is that one.
//
// The faults that once needed an in-repo fake agent come from real ones: an
// outage is a stopped agent, an index that goes backwards is a raft
// snapshot restore, an agent that forgot its services is a restarted one,
// and a blocking query that never answers is an engines.Relay told to hang.
// The fake (registry/consul/consultest) is retired.
var (
	agent    = &engines.Shared{Options: engines.ConsulOptions{Persistent: true}}
	aclAgent = &engines.Shared{Options: engines.ConsulOptions{ACL: true, Persistent: true}}
)

func TestMain(m *testing.M) {
	code := m.Run()
	agent.Stop()
	aclAgent.Stop()
	os.Exit(code)
}

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

// space is a test's own corner of an agent: a KV prefix and a service
// prefix nobody else uses, removed when the test ends.
type space struct {
	agent         *engines.Consul
	token         string
	prefix        string
	servicePrefix string
}

func newSpace(t testing.TB, a *engines.Consul, token string) space {
	t.Helper()
	run := "t" + randomHex(t)
	sp := space{agent: a, token: token, prefix: run + "/", servicePrefix: run + "-app-"}
	t.Cleanup(func() {
		c := a.Client(a.Token)
		c.KV().DeleteTree(sp.prefix, nil)
		if svcs, err := c.Agent().Services(); err == nil {
			for id, s := range svcs {
				if strings.HasPrefix(s.Service, sp.servicePrefix) {
					c.Agent().ServiceDeregister(id)
				}
			}
		}
	})
	return sp
}

// config is a Config for the space, with fast checks and retries.
func (sp space) config() consul.Config {
	return consul.Config{
		API:           sp.agent.Config(sp.token),
		Prefix:        sp.prefix,
		ServicePrefix: sp.servicePrefix,
		CheckInterval: time.Second, // Consul's minimum
		RetryMin:      20 * time.Millisecond,
		RetryMax:      500 * time.Millisecond,
		Logger:        quiet,
	}
}

// quiet logs warnings and errors only.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func TestContract(t *testing.T) {
	a := agent.Get(t)
	registrytest.Run(t, harness(func(t *testing.T) consul.Config {
		return newSpace(t, a, a.Token).config()
	}))
}

func randomHex(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newReal returns a Registry in a space of its own on the shared agent,
// with its own metrics.
func newReal(t *testing.T, tweak ...func(*consul.Config)) (space, *consul.Registry, *prometheus.Registry) {
	t.Helper()
	a := agent.Get(t)
	return newOn(t, newSpace(t, a, a.Token), tweak...)
}

func newOn(t *testing.T, sp space, tweak ...func(*consul.Config)) (space, *consul.Registry, *prometheus.Registry) {
	t.Helper()
	cfg := sp.config()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	for _, f := range tweak {
		f(&cfg)
	}
	return sp, mustNew(t, cfg), reg
}

// ownAgent starts an agent for one test that stops or restarts it: a
// server with default limits that keeps its state when persistent, else a
// -dev agent, which forgets everything when restarted.
func ownAgent(t *testing.T, persistent bool) *engines.Consul {
	t.Helper()
	c, err := engines.StartConsul(ctxT(t, 2*time.Minute), engines.ConsulOptions{Dir: t.TempDir(), Persistent: persistent})
	if err != nil {
		t.Fatalf("start a real Consul agent: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
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
	return waitSnapWithin(t, r, 30*time.Second, what, cond)
}

func waitSnapWithin(t *testing.T, r registry.Registry, d time.Duration, what string, cond func(registry.Snapshot) bool) registry.Snapshot {
	t.Helper()
	ctx := ctxT(t, d)
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
	waitUntilWithin(t, 30*time.Second, what, cond)
}

func waitUntilWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
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
	a := agent.Get(t)
	sp := newSpace(t, a, a.Token)
	pool := []string{"a.race.localhost", "b.race.localhost", "c.race.localhost", "d.race.localhost"}
	const n = 16
	errs := make([]error, n)
	tenants := make([]registry.Tenant, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		// Tenant i wants two hosts of the pool, overlapping its neighbours.
		tenants[i] = tenant(t, fmt.Sprintf("race%d", i), pool[i%4], pool[(i+1+i/4)%4])
		r := mustNew(t, sp.config())
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
	c := a.Client(a.Token)
	pairs, _, err := c.KV().List(sp.prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range pairs {
		keys = append(keys, p.Key)
	}
	var want []string
	for h, o := range owner {
		want = append(want, sp.prefix+"hosts/"+h)
		want = append(want, sp.prefix+"tenants/"+o)
		hp, _, _ := c.KV().Get(sp.prefix+"hosts/"+h, nil)
		if hp == nil || string(hp.Value) != o {
			t.Errorf("host key %s = %v, want owner %s", h, hp, o)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(keys, want) {
		t.Errorf("KV after the race:\n %q\nwant\n %q", keys, want)
	}
	t.Logf("%d of %d creates won", winners, n)
}

// TestWatchWakesOnKVWrite measures how long Watch takes to return after a
// tenant key is written straight into Consul's KV.
func TestWatchWakesOnKVWrite(t *testing.T) {
	sp, r, _ := newReal(t)
	ctx := ctxT(t, 30*time.Second)
	snap, err := r.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := sp.agent.Client(sp.token)
	done := make(chan time.Time, 1)
	go func() {
		if _, err := r.Watch(ctx, snap.Version); err == nil {
			done <- time.Now()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the watcher block; its wake-up is what is measured
	val, _ := json.Marshal(tenant(t, "direct"))
	start := time.Now()
	if _, err := c.KV().Put(&api.KVPair{Key: sp.prefix + "tenants/direct", Value: val}, nil); err != nil {
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
	sp, r, reg := newReal(t)
	ctx := ctxT(t, 30*time.Second)
	created, err := r.CreateTenant(ctx, tenant(t, "same"))
	if err != nil {
		t.Fatal(err)
	}
	snap := waitSnap(t, r, "tenant", hasTenant("same"))

	c := sp.agent.Client(sp.token)
	p, _, err := c.KV().Get(sp.prefix+"tenants/same", nil)
	if err != nil || p == nil {
		t.Fatalf("read back: %v %v", p, err)
	}
	// Same content, re-encoded (another writer may format differently).
	val, _ := json.MarshalIndent(created, "", "  ")
	if _, err := c.KV().Put(&api.KVPair{Key: p.Key, Value: val}, nil); err != nil {
		t.Fatal(err)
	}
	p, _, err = c.KV().Get(p.Key, nil)
	if err != nil || p == nil {
		t.Fatalf("read back the rewrite: %v %v", p, err)
	}
	written := float64(p.ModifyIndex)
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
	a := ownAgent(t, true)
	sp, r, reg := newOn(t, newSpace(t, a, ""))
	ctx := ctxT(t, 2*time.Minute)
	if _, err := r.CreateTenant(ctx, tenant(t, "before")); err != nil {
		t.Fatal(err)
	}
	last := waitSnap(t, r, "tenant before the outage", hasTenant("before"))

	a.Stop()
	waitUntil(t, "watch errors counted for every source", func() bool {
		return metricValue(t, reg, consul.MetricWatchErrors, "kv") > 0 && metricValue(t, reg, consul.MetricWatchErrors, "catalog") > 0
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

	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	other := mustNew(t, sp.config())
	if _, err := other.CreateTenant(ctx, tenant(t, "after")); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, r, "tenant created after the outage", hasTenant("after"))
}

// TestStaleQueryReconnects: an agent that accepts but never answers is
// abandoned after WatchWait plus margin, counted as a reconnect, and the
// watcher recovers when answers come again.
func TestStaleQueryReconnects(t *testing.T) {
	a := agent.Get(t)
	sp := newSpace(t, a, a.Token)
	relay := engines.NewRelay(t, a.Addr)
	viaRelay := sp
	viaRelay.agent = &engines.Consul{Addr: relay.Addr}
	_, r, reg := newOn(t, viaRelay, func(c *consul.Config) {
		c.WatchWait = 100 * time.Millisecond
		c.StaleMargin = 100 * time.Millisecond
	})
	waitSnap(t, r, "first snapshot", func(registry.Snapshot) bool { return true })
	relay.Hang(true)
	waitUntil(t, "a reconnect", func() bool { return metricValue(t, reg, consul.MetricWatchReconnects, "") > 0 })
	relay.Hang(false)
	other := mustNew(t, sp.config())
	if _, err := other.CreateTenant(ctxT(t, 30*time.Second), tenant(t, "fresh")); err != nil {
		t.Fatal(err)
	}
	waitSnap(t, r, "tenant after the hang", hasTenant("fresh"))
	if v := metricValue(t, reg, consul.MetricLastUpdate, ""); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("%s = %v, want a recent Unix time", consul.MetricLastUpdate, v)
	}
}

// TestIndexBackwardsResets restores an older raft snapshot on a real
// agent: Consul's index goes backwards, and the watcher follows the
// restored state instead of dropping every answer below the index it had.
func TestIndexBackwardsResets(t *testing.T) {
	// A query that reaches Consul just after the restore, with the old high
	// index, may block for its whole wait; a short wait bounds that.
	a := ownAgent(t, true)
	sp, r, reg := newOn(t, newSpace(t, a, ""), func(c *consul.Config) { c.WatchWait = 300 * time.Millisecond })
	ctx := ctxT(t, 2*time.Minute)
	if _, err := r.CreateTenant(ctx, tenant(t, "kept")); err != nil {
		t.Fatal(err)
	}
	c := a.Client("")
	saved, _, err := c.Snapshot().Save(nil)
	if err != nil {
		t.Fatalf("save a raft snapshot: %v", err)
	}
	cp, err := io.ReadAll(saved)
	saved.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Enough writes that the index the watcher holds is well above the
	// snapshot's.
	for i := range 20 {
		if _, err := r.CreateTenant(ctx, tenant(t, fmt.Sprintf("lost%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitSnapWithin(t, r, time.Minute, "tenants before the restore", hasTenant("lost19"))
	// That snapshot may have come from Snapshot's own read, before the
	// KV loop (started with it) answered: its first answer holds the
	// writes above.
	waitUntil(t, "the KV loop's first answer", func() bool { return metricValue(t, reg, consul.MetricLastIndex, "kv") > 0 })
	high := metricValue(t, reg, consul.MetricLastIndex, "kv")

	if err := c.Snapshot().Restore(nil, bytes.NewReader(cp)); err != nil {
		t.Fatalf("restore the raft snapshot: %v", err)
	}
	waitSnapWithin(t, r, time.Minute, "restored state", func(s registry.Snapshot) bool { return !hasTenant("lost19")(s) && hasTenant("kept")(s) })
	// The restored state can reach the snapshot through the other
	// queries before the KV query answers again: wait for its index.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got := metricValue(t, reg, consul.MetricLastIndex, "kv")
		if got < high {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("test setup: the KV index after the restore is %v, not below %v: Consul did not go backwards", got, high)
		}
	}
	other := mustNew(t, sp.config())
	if _, err := other.CreateTenant(ctx, tenant(t, "new")); err != nil {
		t.Fatal(err)
	}
	waitSnapWithin(t, r, time.Minute, "tenant written after the restore", hasTenant("new"))
}

// TestInstanceRegistration checks what the agent is told.
func TestInstanceRegistration(t *testing.T) {
	sp, r, _ := newReal(t)
	ctx := ctxT(t, 30*time.Second)
	// Not Healthy: the caller has not seen its /readyz pass (see
	// TestRegisteredPassingIsRoutedAtOnce for the other case).
	in := registry.Instance{ID: sp.servicePrefix + "nairobi-1", Tenant: "nairobi", Addr: "127.0.0.1:9"}
	if err := r.RegisterInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	c := sp.agent.Client(sp.token)
	svc, _, err := c.Agent().Service(in.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Service != sp.servicePrefix+"nairobi" || svc.Address != "127.0.0.1" || svc.Port != 9 ||
		svc.Meta[consul.MetaTenant] != "nairobi" || !slices.Equal(svc.Tags, []string{consul.ServiceTag}) {
		t.Errorf("agent service = %+v", svc)
	}
	checks, _, err := c.Health().Checks(sp.servicePrefix+"nairobi", nil)
	if err != nil || len(checks) != 1 || checks[0].Status != api.HealthCritical {
		t.Errorf("checks of a new instance = %v, %v; want one, critical until /readyz answers", checks, err)
	}
	// Nothing listens on :9: the instance is listed, unhealthy.
	waitSnap(t, r, "unhealthy instance", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0] == registry.Instance{ID: in.ID, Tenant: "nairobi", Addr: "127.0.0.1:9"}
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

// TestTenantComesFromServiceName: an instance is its service name's
// tenant, whatever meta and tags it carries, and a service outside the
// prefix is nobody's instance.
func TestTenantComesFromServiceName(t *testing.T) {
	sp, r, _ := newReal(t)
	c := sp.agent.Client(sp.token)
	for _, reg := range []*api.AgentServiceRegistration{
		// Registered as accra's service but claiming nairobi in meta and tag.
		{ID: sp.servicePrefix + "liar", Name: sp.servicePrefix + "accra", Address: "127.0.0.1", Port: 7,
			Tags: []string{consul.ServiceTag, "tenant-nairobi"}, Meta: map[string]string{consul.MetaTenant: "nairobi"},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}},
		// Not an app service at all.
		{ID: sp.servicePrefix + "other", Name: sp.prefix + "nairobi", Address: "127.0.0.1", Port: 8,
			Tags: []string{consul.ServiceTag}, Meta: map[string]string{consul.MetaTenant: "nairobi"}},
		// A name that is no tenant name.
		{ID: sp.servicePrefix + "bad", Name: sp.servicePrefix + "Not_A_Tenant", Address: "127.0.0.1", Port: 9},
	} {
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	snap := waitSnap(t, r, "the liar's instance", func(s registry.Snapshot) bool { return len(s.Instances) > 0 })
	if want := []registry.Instance{{ID: sp.servicePrefix + "liar", Tenant: "accra", Addr: "127.0.0.1:7", Healthy: true}}; !slices.Equal(snap.Instances, want) {
		t.Fatalf("instances = %+v, want %+v", snap.Instances, want)
	}
}

// TestKeepRegistered: registers, re-registers after the agent forgets
// (a restart without its data), deregisters when the context ends.
func TestKeepRegistered(t *testing.T) {
	a := ownAgent(t, false) // a -dev agent forgets its services when restarted
	_, r, _ := newOn(t, newSpace(t, a, ""))
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(app.Close)
	in := registry.Instance{ID: "accra-1", Tenant: "accra", Addr: app.Listener.Addr().String()}
	c := a.Client("")
	known := func() bool { _, _, err := c.Agent().Service(in.ID, nil); return err == nil }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.KeepRegistered(ctx, in, 20*time.Millisecond) }()
	t.Cleanup(cancel)

	waitSnapWithin(t, r, time.Minute, "healthy instance", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0].Healthy
	})
	if err := a.Restart(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitUntilWithin(t, time.Minute, "re-registration after the agent forgot", known)
	waitSnapWithin(t, r, time.Minute, "instance back and healthy", func(s registry.Snapshot) bool {
		return len(s.Instances) == 1 && s.Instances[0].Healthy && s.Instances[0].Tenant == "accra"
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("KeepRegistered returned %v", err)
		}
	case <-time.After(30 * time.Second):
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
	_, r, _ := newReal(t)
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
	case <-time.After(60 * time.Second):
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
			sp, r, _ := newReal(t, func(c *consul.Config) { c.MaxQueryRate = tc.rate })
			lat := propagation(t, r, mustNew(t, sp.config()), 300)
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
			a := agent.Get(b)
			sp := newSpace(b, a, a.Token)
			cfg := sp.config()
			cfg.MaxQueryRate = tc.rate
			r := mustNew(b, cfg)
			writer := mustNew(b, sp.config())
			b.ResetTimer()
			lat := propagation(b, r, writer, b.N)
			b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99-ms")
		})
	}
}
