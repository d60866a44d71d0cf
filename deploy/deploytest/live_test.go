package deploytest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	consulapi "github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// TestLiveSystem runs what the deployment files describe, on this machine,
// on a real Consul agent (internal/engines):
//
//  1. `campus dev` with the Consul registry and no tenants of its own (its
//     embedded MongoDB-compatible server stands in for the mongo service;
//     its supervisor runs a second app per tenant once campus-init has
//     registered them, and its proxy registers itself);
//  2. the compose services, each with its own command, environment, secrets
//     and configs, addresses rewritten to loopback ports: campus-init
//     (twice: it must be idempotent), one app per tenant, the proxy (which
//     registers itself);
//  3. an app started as the Nomad job starts it, registered as Nomad
//     registers it;
//  4. a real Prometheus with deploy/prometheus/prometheus.yml (addresses
//     substituted), which must find every proxy and app through Consul and
//     answer every query of every dashboard panel with at least one series,
//     before any 5xx or restart has happened; then a crashed dev child,
//     which the restart panels must count;
//
// and checks the health checks pass, each tenant's host reaches that
// tenant, every metric and label the dashboards query is exposed, and a
// proxy leaves Consul when it shuts down.
func TestLiveSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts campus dev, the compose services, Consul and Prometheus")
	}
	needCampus(t)
	p := loadCompose(t)
	cfg := loadPrometheus(t)
	tenants := readTenants(t)
	agent := engines.ConsulForTest(t, engines.ConsulOptions{ACL: true}) // as compose runs it
	cc := agent.Client(agent.Token)
	seen := exposed{}

	// 1. campus dev.
	dev := startDev(t, agent)
	mongoURI := "mongodb://" + dev.mongo + "/"

	// 2. The compose services.
	c := newComposeRun(t, p, agent.Addr, agent.Token, mongoURI)

	t.Run("campus-init", func(t *testing.T) {
		for i := range 2 {
			r := c.runOnce(t, "campus-init", 3*time.Minute)
			if r.code != 0 {
				t.Fatalf("run %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
			}
			if i == 1 && strings.Count(r.stdout, "exists; migrating") != len(tenants) {
				t.Errorf("second run did not find every tenant registered:\n%s", r.stdout)
			}
		}
		r := runCampus(t, []string{"tenant", "list", "--json"}, consulEnv(agent), 30*time.Second)
		var got []registry.Tenant
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("campus tenant list --json: %v\n%s%s", err, r.stdout, r.stderr)
		}
		byName := map[string]registry.Tenant{}
		for _, tn := range got {
			byName[tn.Name] = tn
		}
		for _, tl := range tenants {
			tn, ok := byName[tl.name]
			if !ok || strings.Join(tn.Hosts, ",") != strings.Join(tl.hosts, ",") || (tl.display != "" && tn.DisplayName != tl.display) {
				t.Errorf("tenant %s in Consul: %+v, want hosts %v and display name %q", tl.name, tn, tl.hosts, tl.display)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("apps", func(t *testing.T) {
		for _, tl := range tenants {
			c.start(t, appPrefix+tl.name)
		}
		for _, tl := range tenants {
			c.waitHealthy(t, appPrefix+tl.name)
		}
		// Each app registered itself with its own tenant's token: service
		// campus-app-<tenant>, at its advertised address, check passing (beside the instances
		// campus dev's supervisor registers).
		err := eventually(60*time.Second, func() error {
			for _, tl := range tenants {
				service := consul.DefaultServicePrefix + tl.name
				entries, _, err := cc.Health().Service(service, "", true, nil)
				if err != nil {
					return err
				}
				var got []string
				for _, e := range entries {
					got = append(got, joinHostPort(e.Service.Address, e.Service.Port))
				}
				if want := c.addr(appPrefix+tl.name, appPort); !slices.Contains(got, want) {
					return fmt.Errorf("passing %s instances at %v; want one at %s", service, got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Every tenant has its compose app and a campus dev child.
	twoEach := map[string]int{}
	for _, tl := range tenants {
		twoEach[tl.name] = 2
	}
	t.Run("proxy", func(t *testing.T) {
		c.start(t, "proxy")
		c.waitHealthy(t, "proxy")
		// Both proxies registered themselves, at their admin addresses,
		// with a passing /healthz check.
		waitProxiesRegistered(t, cc, []string{c.addr("proxy", "8001"), dev.admin})
		waitRoutesN(t, c.addr("proxy", "8001"), tenants, twoEach)
		waitRoutesN(t, dev.admin, tenants, twoEach)
		checkRouting(t, c.addr("proxy", "8000"), tenants)
	})
	if t.Failed() {
		t.FailNow()
	}

	// 3. A Nomad-started app of one tenant, next to its compose app.
	nomadTenant := tenants[len(tenants)-1].name
	nomadAddr := ""
	top := t
	t.Run("nomad app", func(t *testing.T) {
		dir := top.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mongodb_uri"), []byte(mongoURI), 0o600); err != nil {
			t.Fatal(err)
		}
		// The tenant's Consul token, as the Nomad Variable holds it; Nomad
		// registers the service with the token the job was submitted with.
		token, err := os.ReadFile(c.secrets["consul_token_"+nomadTenant])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "consul_token"), token, 0o600); err != nil {
			t.Fatal(err)
		}
		nomad := agent.Client(string(token))
		j := parseNomadJob(t, nomadAppJob, map[string]string{"tenant": nomadTenant},
			runtimeValues{"NOMAD_SECRETS_DIR": dir, "attr.unique.network.ip-address": "127.0.0.1"})
		g, task := onlyTask(t, j)
		listen := freeAddr(t)
		r := strings.NewReplacer("127.0.0.1:8500", agent.Addr, "0.0.0.0:"+strconv.FormatInt(g.ports["http"].to, 10), listen)
		env := map[string]string{}
		for k, v := range task.env {
			env[k] = r.Replace(v)
		}
		proc := start(top, "nomad "+j.id, append([]string{campusBin}, rewriteAll(task.args, r)...), env)
		waitCampusHealthy(t, proc, "http://"+listen+g.services[0].checks[0].path)
		s := g.services[0]
		host, portStr := splitAddr(t, listen)
		portNum, _ := strconv.Atoi(portStr)
		if err := nomad.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
			ID: "_nomad-task-" + randomID() + "-group-app-" + s.name + "-http", Name: s.name, Tags: s.tags, Meta: s.meta,
			Address: host, Port: portNum,
			Check: &consulapi.AgentServiceCheck{HTTP: "http://" + listen + s.checks[0].path, Interval: "1s", Timeout: "3s"},
		}); err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(twoEach)
		want[nomadTenant] = 3
		waitRoutesN(t, c.addr("proxy", "8001"), tenants, want)
		nomadAddr = listen
		checkRouting(t, c.addr("proxy", "8000"), tenants)
		seen.add(scrapeLabels(t, "http://"+listen+"/metrics"))
	})
	if t.Failed() {
		t.FailNow()
	}

	// Traffic through both proxies, so that per-request series exist; no
	// request gets a 5xx.
	devTenants, err := dev.tenants()
	if err != nil {
		t.Fatal(err)
	}
	checkRouting(t, c.addr("proxy", "8000"), tenants)
	checkRouting(t, dev.proxy, devTenants)
	dev.handshakes(t, devTenants)
	for _, proxyAddr := range []string{c.addr("proxy", "8000"), dev.proxy} {
		get(t, proxyAddr, "unknown.example.org", "/")
	}

	// 4. Prometheus, as deploy/prometheus/prometheus.yml configures it.
	prom := startPrometheus(t, p, agent.Addr, c.secrets)
	appTargets, err := instanceAddrs(c.addr("proxy", "8001"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(appTargets, nomadAddr) || len(appTargets) != 2*len(tenants)+1 {
		t.Fatalf("the proxy routes to %v; want each tenant's compose app and dev child, and the Nomad app %s", appTargets, nomadAddr)
	}
	t.Run("prometheus targets", func(t *testing.T) {
		waitTargets(t, prom, map[string][]string{
			grafana.JobApp:   appTargets,
			grafana.JobProxy: {c.addr("proxy", "8001"), dev.admin},
		}, tenants)
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Run("prometheus dashboards", func(t *testing.T) {
		checkDashboardsInPrometheus(t, prom, tenants)
	})
	t.Run("prometheus alert rules", func(t *testing.T) {
		checkRulesEvaluate(t, prom)
	})

	// A crashed dev child comes back on a new port; the supervisor counts
	// the restart, and so does the restart panel.
	t.Run("restart", func(t *testing.T) {
		crashed := dev.crashChild(t)
		checkRestartCounted(t, prom, crashed)
	})

	t.Run("dashboards", func(t *testing.T) {
		seen.add(scrapeLabels(t, "http://"+c.addr("proxy", "8001")+"/metrics"))
		seen.add(scrapeLabels(t, "http://"+dev.admin+"/metrics"))
		for _, addr := range dev.appAddrs(t) {
			seen.add(scrapeLabels(t, "http://"+addr+"/metrics"))
		}
		seen.add(scrapeLabels(t, "http://"+nomadAddr+"/metrics"))
		checkExposed(t, seen, jobTargetLabels(cfg))
	})

	// A proxy that shuts down leaves the catalog.
	t.Run("proxy deregisters", func(t *testing.T) {
		c.procs["proxy"].Stop()
		if err := c.procs["proxy"].Err(); err != nil {
			t.Errorf("the proxy did not exit cleanly on SIGTERM: %v", err)
		}
		waitProxiesRegistered(t, cc, []string{dev.admin})
	})
}

// ---- campus dev ----

type devSystem struct {
	*systemtest.Dev
	proxy, admin, mongo string
	tls                 string // HTTPS listener (dev CA), for the certificate metrics
}

// startDev starts `campus dev` on the Consul agent, with no tenants of its
// own: its supervisor starts an app for each tenant registered there, and
// its proxy registers itself. It returns once the admin listener answers
// (the embedded database is up before it).
func startDev(t *testing.T, agent *engines.Consul) *devSystem {
	t.Helper()
	tlsAddr := freeAddr(t)
	// HTTPS with the dev CA, plain HTTP still served (not redirected), so
	// that the dev proxy exposes the certificate metrics the dashboards
	// and alerts read (the compose proxy runs without HTTPS here: see
	// composeRun.argv).
	dev := systemtest.DevForTest(t, systemtest.DevOptions{
		Bin: needCampus(t),
		Dir: t.TempDir(),
		Env: environ(t, consulEnv(agent)),
		Args: []string{"--tls", "--tls-listen", tlsAddr, "--https-redirect=false",
			"--registry", "consul", "--no-seed", "--consul-check-interval", "1s"},
		StopSignal: syscall.SIGTERM,
	})
	return &devSystem{Dev: dev, proxy: dev.ProxyAddr, admin: dev.AdminAddr, mongo: dev.MongoAddr, tls: tlsAddr}
}

// consulEnv is the environment of a campus command on the agent.
func consulEnv(agent *engines.Consul) map[string]string {
	env := map[string]string{"CAMPUS_REGISTRY": "consul", "CONSUL_HTTP_ADDR": agent.Addr}
	if agent.Token != "" {
		env["CONSUL_HTTP_TOKEN"] = agent.Token
	}
	return env
}

// tenants are the tenants dev routes (it seeds its own), from /routes.
// handshakes opens a TLS connection to the dev proxy for every host of
// tenants, so that it holds (and reports the expiry of) their certificates.
func (d *devSystem) handshakes(t *testing.T, tenants []tenantLine) {
	t.Helper()
	for _, tl := range tenants {
		for _, h := range tl.hosts {
			conn, err := tls.Dial("tcp", d.tls, &tls.Config{ServerName: h, InsecureSkipVerify: true})
			if err != nil {
				t.Errorf("TLS handshake for %s with the dev proxy: %v", h, err)
				continue
			}
			if got := conn.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != h {
				t.Errorf("dev proxy: certificate for %s names %v", h, got)
			}
			conn.Close()
		}
	}
}

func (d *devSystem) tenants() ([]tenantLine, error) {
	rt, err := getRoutes(d.admin)
	if err != nil {
		return nil, err
	}
	byName := map[string]*tenantLine{}
	for _, h := range sortedKeys(rt.Hosts) {
		ri := rt.Hosts[h]
		tl, ok := byName[ri.Tenant]
		if !ok {
			tl = &tenantLine{name: ri.Tenant, display: ri.DisplayName}
			byName[ri.Tenant] = tl
		}
		tl.hosts = append(tl.hosts, h)
	}
	var out []tenantLine
	for _, n := range sortedKeys(byName) {
		out = append(out, *byName[n])
	}
	return out, nil
}

// appAddrs are the addresses of the app instances dev's proxy routes to
// (its children and the others registered in Consul), from /routes.
func (d *devSystem) appAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := instanceAddrs(d.admin)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// instanceAddrs are the addresses of every instance a proxy routes to.
func instanceAddrs(admin string) ([]string, error) {
	rt, err := getRoutes(admin)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, ri := range rt.Hosts {
		for _, in := range ri.Instances {
			set[in.Addr] = true
		}
	}
	return sortedKeys(set), nil
}

// devChild is an app child of campus dev.
type devChild struct{ tenant, listen string }

// crashChild kills one of dev's app children, as a crash would, and says
// which.
func (d *devSystem) crashChild(t *testing.T) devChild {
	t.Helper()
	pid := d.Pid()
	kids, err := d.Children()
	if err != nil {
		t.Fatalf("find campus dev's children: %v", err)
	}
	for _, k := range kids {
		if slices.Contains(k.Args, "app") {
			c := devChild{tenant: flagValue(k.Args, "--tenant"), listen: flagValue(k.Args, "--listen")}
			if c.tenant == "" || c.listen == "" {
				t.Fatalf("dev child %d: no --tenant and --listen in %q", k.Pid, k.Args)
			}
			if err := syscall.Kill(k.Pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill dev child %d: %v", k.Pid, err)
			}
			return c
		}
	}
	t.Fatalf("campus dev (pid %d) has no app child", pid)
	return devChild{}
}

// ---- the compose services, locally ----

type composeRun struct {
	top     *testing.T // the processes live until it ends
	p       *types.Project
	consul  string
	addrs   map[string]map[string]string // service → container port → local address
	secrets map[string]string            // secret → local file
	procs   map[string]*systemtest.Process
}

func newComposeRun(t *testing.T, p *types.Project, consulAddr, managementToken, mongoURI string) *composeRun {
	t.Helper()
	c := &composeRun{top: t, p: p, consul: consulAddr, addrs: map[string]map[string]string{},
		secrets: map[string]string{}, procs: map[string]*systemtest.Process{}}
	for name, s := range p.Services {
		if !isCampus(s) {
			continue
		}
		c.addrs[name] = map[string]string{}
		for _, port := range []string{"8000", "8001", appPort} {
			if c.mentions(s, ":"+port) {
				c.addrs[name][port] = freeAddr(t)
			}
		}
	}
	dir := t.TempDir()
	for name := range p.Secrets {
		v := randomID()
		switch {
		case strings.HasPrefix(name, "mongodb_uri_"):
			v = mongoURI // the stand-in server has no users
		case name == "consul_management_token":
			v = managementToken // the agent's, as the consul service's would be
		case strings.HasPrefix(name, "consul_token_"):
			v = randomUUID() // Consul takes only UUIDs as secrets
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		c.secrets[name] = path
	}
	return c
}

// mentions tells whether a service's command, environment or health check
// contain s.
func (c *composeRun) mentions(svc types.ServiceConfig, s string) bool {
	all := append(append([]string{}, svc.Command...), svc.Entrypoint...)
	for _, v := range svc.Environment {
		if v != nil {
			all = append(all, *v)
		}
	}
	if svc.HealthCheck != nil {
		all = append(all, svc.HealthCheck.Test...)
	}
	return strings.Contains(strings.Join(all, " "), s)
}

func (c *composeRun) addr(service, port string) string { return c.addrs[service][port] }

// replacer maps one service's container view to this machine: other
// services' host:port, its own listen addresses, its secrets and configs.
func (c *composeRun) replacer(service string) *strings.Replacer {
	m := map[string]string{"consul:8500": c.consul, "/busybox/sh": "sh"}
	for svc, ports := range c.addrs {
		for port, addr := range ports {
			m[svc+":"+port] = addr
		}
	}
	for port, addr := range c.addrs[service] {
		for _, h := range []string{"0.0.0.0", "127.0.0.1", "localhost"} {
			m[h+":"+port] = addr
		}
	}
	if s, ok := c.p.Services[service]; ok {
		for _, sec := range s.Secrets {
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			m[target] = c.secrets[sec.Source]
		}
		// A script that names the secrets folder (campus-init's
		// SECRETS_DIR) finds the files there by their source names.
		if v := s.Environment["SECRETS_DIR"]; v != nil && len(s.Secrets) > 0 {
			m[*v] = filepath.Dir(c.secrets[s.Secrets[0].Source])
		}
		for _, cf := range s.Configs {
			m[cf.Target] = c.p.Configs[cf.Source].File
		}
	}
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k, m[k])
	}
	return strings.NewReplacer(pairs...)
}

func (c *composeRun) argv(t *testing.T, service string) ([]string, map[string]string) {
	t.Helper()
	s := c.p.Services[service]
	r := c.replacer(service)
	argv := rewriteAll(s.Entrypoint, r)
	if len(argv) == 0 {
		argv = []string{campusBin} // the image's ENTRYPOINT
	}
	argv = append(argv, rewriteAll(s.Command, r)...)
	env := serviceEnv(s, r)
	if _, ok := env["CAMPUS_TLS_LISTEN"]; ok {
		// HTTPS off: its certificates come from an ACME directory on the
		// internet, and plain HTTP would only redirect. HTTPS is tested end
		// to end in certs/ (Pebble) and cmd/campus (TestDevTLS); the dev
		// proxy here runs it with its local CA.
		env["CAMPUS_TLS_LISTEN"] = ""
	}
	return argv, env
}

func (c *composeRun) runOnce(t *testing.T, service string, timeout time.Duration) result {
	t.Helper()
	argv, env := c.argv(t, service)
	return runCommand(t, argv, env, timeout)
}

func (c *composeRun) start(t *testing.T, service string) {
	t.Helper()
	argv, env := c.argv(t, service)
	c.procs[service] = start(c.top, service, argv, env)
}

// waitHealthy runs the service's own health check until it passes.
func (c *composeRun) waitHealthy(t *testing.T, service string) {
	t.Helper()
	test := c.p.Services[service].HealthCheck.Test // [CMD campus healthcheck URL]
	url := c.replacer(service).Replace(test[len(test)-1])
	waitCampusHealthy(t, c.procs[service], url)
}

func waitCampusHealthy(t *testing.T, proc *systemtest.Process, url string) {
	t.Helper()
	var last result
	err := eventually(90*time.Second, func() error {
		if proc.Exited() {
			return fmt.Errorf("%s exited: %v", proc.Name, proc.Err())
		}
		last = runCampus(t, []string{"healthcheck", url}, nil, 10*time.Second)
		if last.code != 0 {
			return fmt.Errorf("campus healthcheck %s: exit %d: %s", url, last.code, strings.TrimSpace(last.stderr))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s never became healthy: %v", proc.Name, err)
	}
}

// ---- the proxy ----

func getRoutes(admin string) (proxy.Routes, error) {
	var rt proxy.Routes
	resp, err := httpClient.Get("http://" + admin + "/routes")
	if err != nil {
		return rt, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rt, fmt.Errorf("/routes: %s", resp.Status)
	}
	return rt, json.NewDecoder(resp.Body).Decode(&rt)
}

// routesReady checks that every tenant's hosts route to at least
// want[tenant] (default 1) healthy instances.
func routesReady(admin string, tenants []tenantLine, want map[string]int) error {
	rt, err := getRoutes(admin)
	if err != nil {
		return err
	}
	for _, tl := range tenants {
		n := want[tl.name]
		if n == 0 {
			n = 1
		}
		for _, h := range tl.hosts {
			ri, ok := rt.Hosts[h]
			if !ok || ri.Tenant != tl.name {
				return fmt.Errorf("host %s: route %+v, want tenant %s", h, ri, tl.name)
			}
			healthy := 0
			for _, in := range ri.Instances {
				if in.Healthy {
					healthy++
				}
			}
			if healthy < n {
				return fmt.Errorf("host %s: %d healthy instances, want %d: %+v (watch error %q)", h, healthy, n, ri.Instances, rt.WatchError)
			}
		}
	}
	return nil
}

func waitRoutesN(t *testing.T, admin string, tenants []tenantLine, want map[string]int) {
	t.Helper()
	if err := eventually(60*time.Second, func() error { return routesReady(admin, tenants, want) }); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s via %s: %v", host, path, addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// checkRouting: every tenant's primary host answers with that tenant's
// home page, which names no other tenant.
func checkRouting(t *testing.T, proxyAddr string, tenants []tenantLine) {
	t.Helper()
	for _, tl := range tenants {
		code, body := get(t, proxyAddr, tl.hosts[0], "/")
		if code != http.StatusOK {
			t.Errorf("GET http://%s/ through %s: %d", tl.hosts[0], proxyAddr, code)
			continue
		}
		if tl.display != "" && !strings.Contains(body, tl.display) {
			t.Errorf("GET http://%s/ does not show %q", tl.hosts[0], tl.display)
		}
		for _, other := range tenants {
			if other.name != tl.name && other.display != "" && strings.Contains(body, other.display) {
				t.Errorf("GET http://%s/ shows another tenant's name %q", tl.hosts[0], other.display)
			}
		}
	}
}

// ---- Prometheus ----

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return families
}

func familyLabelsOf(families map[string]*dto.MetricFamily) map[string]familyLabels {
	out := map[string]familyLabels{}
	for name, f := range families {
		ls := familyLabels{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = true
			}
		}
		out[name] = ls
	}
	return out
}

func scrapeLabels(t *testing.T, url string) map[string]familyLabels {
	t.Helper()
	return familyLabelsOf(scrape(t, url))
}

// checkTenantLabels: an app's campus_app_* series all carry the tenant the
// target was discovered for (honor_labels keeps them as they are).
func checkTenantLabels(t *testing.T, families map[string]*dto.MetricFamily, tenant string) {
	t.Helper()
	if tenant == "" {
		t.Errorf("app target without a tenant label")
		return
	}
	n := 0
	for name, f := range families {
		if !strings.HasPrefix(name, "campus_app_") {
			continue
		}
		for _, m := range f.GetMetric() {
			n++
			got := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" {
					got = lp.GetValue()
				}
			}
			if got != tenant {
				t.Errorf("target of tenant %s exposes %s with tenant=%q", tenant, name, got)
			}
		}
	}
	if n == 0 {
		t.Errorf("target of tenant %s exposes no campus_app_* series", tenant)
	}
}

// ---- small helpers ----

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("%q is not host:port", addr)
	}
	return addr[:i], addr[i+1:]
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
