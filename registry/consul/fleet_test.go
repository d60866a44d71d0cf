package consul_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// Issue 24: the watch holds a bounded number of connections to Consul
// whatever the fleet's size, and routes only through the service name.

// connCounter counts a client's open connections to the agent, and the
// most it ever had open at once.
type connCounter struct {
	mu        sync.Mutex
	open, max int
}

func (c *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open++
	c.max = max(c.max, c.open)
	c.mu.Unlock()
	return &countedConn{Conn: conn, c: c}, nil
}

func (c *connCounter) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() {
		cc.c.mu.Lock()
		cc.c.open--
		cc.c.mu.Unlock()
	})
	return cc.Conn.Close()
}

// TestWatchConnectionsBounded: with 60 nodes each running an instance
// (the per-node watch held two blocking queries per node, 120 connections),
// a watcher that follows them all, and answers lookups and writes meanwhile,
// never has more than consulhttp's 8 connections open to its agent.
func TestWatchConnectionsBounded(t *testing.T) {
	const nodes = 60
	sp, writer, _ := newReal(t)
	ctx := ctxT(t, 2*time.Minute)
	catalog := sp.agent.Client(sp.token).Catalog()
	for i := range nodes {
		node := fmt.Sprintf("%snode%d", sp.prefix[:len(sp.prefix)-1], i)
		name := fmt.Sprintf("fleet%d", i)
		if _, err := writer.CreateTenant(ctx, tenant(t, name)); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Register(&api.CatalogRegistration{
			Node: node, Address: "127.0.0.1",
			Service: &api.AgentService{ID: name + "-1", Service: sp.servicePrefix + name, Port: 1000 + i},
			Check:   &api.AgentCheck{CheckID: "app:" + name, Name: "app", Status: api.HealthPassing, ServiceID: name + "-1"},
		}, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { catalog.Deregister(&api.CatalogDeregistration{Node: node}, nil) })
	}
	counter := &connCounter{}
	cfg := sp.config()
	apiCfg := *cfg.API
	apiCfg.Transport = &http.Transport{DialContext: counter.dial}
	cfg.API = &apiCfg
	watcher := mustNew(t, cfg)
	waitSnapWithin(t, watcher, time.Minute, "every node's instance", func(s registry.Snapshot) bool {
		healthy := 0
		for _, in := range s.Instances {
			if in.Healthy {
				healthy++
			}
		}
		return healthy == nodes
	})
	// Lookups and writes from many goroutines at once, beside the watch.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := watcher.LookupHost(ctx, fmt.Sprintf("fleet%d.school.localhost", i%nodes)); err != nil {
				t.Errorf("LookupHost: %v", err)
			}
			if _, err := watcher.SetState(ctx, fmt.Sprintf("fleet%d", i%nodes), registry.StateActive); err != nil {
				t.Errorf("SetState: %v", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d nodes: at most %d connections open at once", nodes, counter.peak())
	if got := counter.peak(); got > 8 {
		t.Errorf("the watcher had %d connections open at once to its agent, want at most 8", got)
	}
}

// TestWatchIsolation tries to cross tenants through the watch alone (no
// lookups): another tenant's passing service claiming A's hosts in its
// meta and tags, a passing service under A's service name in other letter
// case, and the passing instance of a deleted tenant are never routed. A
// control tenant created after each setup must be routed first, so the
// proxy's table has seen the setup when the requests are made.
func TestWatchIsolation(t *testing.T) {
	sp, writer, _ := newReal(t)
	_, r, _ := newOn(t, sp)
	get := routedProxy(t, r)
	ctx := ctxT(t, 2*time.Minute)
	agentAPI := sp.agent.Client(sp.token).Agent()
	w := tenantWriter{ctx, writer}
	instance := w.instance
	create := func(t *testing.T, name string) registry.Tenant {
		return w.create(t, tenant(t, name, name+".school.localhost", "www."+name+".school.localhost"))
	}
	// service registers, straight with the agent, a passing service named
	// name whose meta and tags claim victim and its hosts.
	service := func(t *testing.T, name string, victim registry.Tenant, body string) {
		t.Helper()
		app := fakeApp(t, body, true)
		host, port := splitAddr(t, addrOf(app))
		tags := []string{consul.ServiceTag, "tenant-" + victim.Name}
		tags = append(tags, victim.Hosts...)
		if err := agentAPI.ServiceRegister(&api.AgentServiceRegistration{
			ID: sp.servicePrefix + "claim-" + randomHex(t), Name: name, Address: host, Port: port, Tags: tags,
			Meta:  map[string]string{consul.MetaTenant: victim.Name, "host": victim.PrimaryHost, "hosts": strings.Join(victim.Hosts, ",")},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name  string
		setup func(t *testing.T) registry.Tenant // the victim
		want  int
	}{
		{"another tenant's service claiming A's hosts in meta and tags", func(t *testing.T) registry.Tenant {
			a, b := create(t, "wiso-a"), create(t, "wiso-b")
			service(t, sp.servicePrefix+b.Name, a, "app of wiso-b")
			return a
		}, http.StatusServiceUnavailable},
		{"A's service name in other letter case", func(t *testing.T) registry.Tenant {
			a := create(t, "wiso-case")
			service(t, sp.servicePrefix+strings.ToUpper(a.Name), a, "app of the impostor")
			service(t, strings.ToUpper(sp.servicePrefix)+a.Name, a, "app of the impostor")
			return a
		}, http.StatusServiceUnavailable},
		{"an instance of a deleted tenant", func(t *testing.T) registry.Tenant {
			a := create(t, "wiso-deleted")
			instance(t, a.Name, "app of wiso-deleted")
			if _, err := writer.MarkDeleted(ctx, a.Name, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return a
		}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := tc.setup(t)
			control := create(t, fmt.Sprintf("wiso-control%d", i))
			instance(t, control.Name, "app of "+control.Name)
			waitUntil(t, "the control tenant routed by the watch", func() bool {
				code, body := get(control.PrimaryHost)
				return code == http.StatusOK && body == "app of "+control.Name
			})
			for _, host := range victim.Hosts {
				for n := range 3 {
					if code, body := get(host); code != tc.want || strings.Contains(body, "app of") {
						t.Fatalf("request %d for %s: %d %q, want %d and no app's answer", n+1, host, code, body, tc.want)
					}
				}
			}
		})
	}
}

// tenantWriter creates tenants and registers instances for isolation
// tests, failing the test on any error.
type tenantWriter struct {
	ctx context.Context
	reg *consul.Registry
}

func (w tenantWriter) create(t *testing.T, tn registry.Tenant) registry.Tenant {
	t.Helper()
	tn, err := w.reg.CreateTenant(w.ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// instance registers a healthy instance of tenantName, an app answering
// body.
func (w tenantWriter) instance(t *testing.T, tenantName, body string) {
	t.Helper()
	app := fakeApp(t, body, true)
	if err := w.reg.RegisterInstance(w.ctx, registry.Instance{ID: tenantName + "-1", Tenant: tenantName, Addr: addrOf(app), Healthy: true}); err != nil {
		t.Fatal(err)
	}
}
