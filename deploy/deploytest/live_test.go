package deploytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/discovery"
	promconsul "github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/consul/consultest"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// TestLiveSystem runs what the deployment files describe, on this machine:
//
//  1. `campus dev` (its embedded MongoDB-compatible server stands in for
//     the mongo service, and its supervisor exposes the supervisor metrics);
//  2. the compose services, each with its own command, environment, secrets
//     and configs, addresses rewritten to loopback ports, against a
//     stand-in Consul agent: campus-init (twice: it must be idempotent), one
//     app per tenant, the proxy (and its Consul service definition);
//  3. an app started as the Nomad job starts it, registered as Nomad
//     registers it;
//  4. Prometheus's own Consul discovery and relabelling over those
//     registrations, scraping what they yield;
//
// and checks the health checks pass, each tenant's host reaches that
// tenant, and every metric and label the dashboards query is exposed.
func TestLiveSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts campus dev and the compose services")
	}
	needCampus(t)
	p := loadCompose(t)
	cfg := loadPrometheus(t)
	tenants := readTenants(t)
	fake := consultest.NewServer(t)
	cc, err := consulapi.NewClient(&consulapi.Config{Address: fake.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	seen := exposed{}

	// 1. campus dev.
	dev := startDev(t)
	mongoURI := "mongodb://" + dev.mongo + "/"

	// 2. The compose services.
	c := newComposeRun(t, p, fake.Addr(), mongoURI)

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
		r := runCampus(t, []string{"tenant", "list", "--json"},
			map[string]string{"CAMPUS_REGISTRY": "consul", "CONSUL_HTTP_ADDR": fake.Addr()}, 30*time.Second)
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
		// Each app registered itself: service campus-app, meta tenant,
		// at its advertised address, check passing.
		err := eventually(30*time.Second, func() error {
			entries, _, err := cc.Health().Service(consul.DefaultServiceName, "", true, nil)
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, e := range entries {
				got[e.Service.Meta[consul.MetaTenant]] = joinHostPort(e.Service.Address, e.Service.Port)
			}
			for _, tl := range tenants {
				if want := c.addr(appPrefix+tl.name, appPort); got[tl.name] != want {
					return fmt.Errorf("passing %s instances by tenant %v; want %s at %s", consul.DefaultServiceName, got, tl.name, want)
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

	t.Run("proxy", func(t *testing.T) {
		c.start(t, "proxy")
		c.waitHealthy(t, "proxy")
		// Consul loads deploy/compose/consul/campus-proxy.json; register the
		// same definition with the stand-in agent.
		def := readConsulProxyService(t)
		r := c.replacer("consul")
		reg := &consulapi.AgentServiceRegistration{
			ID: def.ID, Name: def.Name, Tags: def.Tags, Meta: map[string]string{},
			Check: &consulapi.AgentServiceCheck{HTTP: r.Replace(def.Check.HTTP), Interval: "1s", Timeout: def.Check.Timeout},
		}
		host, portStr := splitAddr(t, r.Replace(joinHostPort(def.Address, def.Port)))
		reg.Address = host
		reg.Port, _ = strconv.Atoi(portStr)
		for k, v := range def.Meta {
			reg.Meta[k] = v
		}
		_, metricsPort := splitAddr(t, r.Replace(def.Address+":"+def.Meta[metricsPortMeta]))
		reg.Meta[metricsPortMeta] = metricsPort
		if err := cc.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
		waitRoutesN(t, c.addr("proxy", "8001"), tenants, nil)
		checkRouting(t, c.addr("proxy", "8000"), tenants)
	})
	if t.Failed() {
		t.FailNow()
	}

	// 3. A Nomad-started app of one tenant, next to its compose app.
	nomadTenant := tenants[len(tenants)-1].name
	top := t
	t.Run("nomad app", func(t *testing.T) {
		dir := top.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mongodb_uri"), []byte(mongoURI), 0o600); err != nil {
			t.Fatal(err)
		}
		j := parseNomadJob(t, nomadAppJob, map[string]string{"tenant": nomadTenant},
			runtimeValues{"NOMAD_SECRETS_DIR": dir, "attr.unique.network.ip-address": "127.0.0.1"})
		g, task := onlyTask(t, j)
		listen := freeAddr(t)
		r := strings.NewReplacer("127.0.0.1:8500", fake.Addr(), "0.0.0.0:"+strconv.FormatInt(g.ports["http"].to, 10), listen)
		env := map[string]string{}
		for k, v := range task.env {
			env[k] = r.Replace(v)
		}
		proc := start(top, "nomad "+j.id, append([]string{campusBin}, rewriteAll(task.args, r)...), env)
		waitCampusHealthy(t, proc, "http://"+listen+g.services[0].checks[0].path)
		s := g.services[0]
		host, portStr := splitAddr(t, listen)
		portNum, _ := strconv.Atoi(portStr)
		if err := cc.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
			ID: "_nomad-task-" + randomID() + "-group-app-" + s.name + "-http", Name: s.name, Tags: s.tags, Meta: s.meta,
			Address: host, Port: portNum,
			Check: &consulapi.AgentServiceCheck{HTTP: "http://" + listen + s.checks[0].path, Interval: "1s", Timeout: "3s"},
		}); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{nomadTenant: 2}
		waitRoutesN(t, c.addr("proxy", "8001"), tenants, want)
		checkRouting(t, c.addr("proxy", "8000"), tenants)
		seen.add(scrapeLabels(t, "http://"+listen+"/metrics"))
	})
	if t.Failed() {
		t.FailNow()
	}

	// Traffic, so that per-request series exist; a crashed dev child, so
	// that the supervisor counts a restart.
	devTenants, err := dev.tenants()
	if err != nil {
		t.Fatal(err)
	}
	checkRouting(t, c.addr("proxy", "8000"), tenants)
	checkRouting(t, dev.proxy, devTenants)
	for _, proxyAddr := range []string{c.addr("proxy", "8000"), dev.proxy} {
		get(t, proxyAddr, "unknown.example.org", "/")
	}
	dev.crashChild(t)

	// 4. Prometheus's discovery over the registrations.
	t.Run("prometheus discovery", func(t *testing.T) {
		for _, job := range []struct {
			name  string
			count int
		}{{grafana.JobApp, len(tenants) + 1}, {grafana.JobProxy, 1}} {
			sc, sd := scrapeJob(t, cfg, job.name)
			targets := discover(t, sd, fake.Addr(), job.count)
			for _, tg := range targets {
				ls, keep := relabelTarget(sc, targetLabelsFromSD(sc.JobName, tg))
				if !keep {
					t.Errorf("job %s dropped target %v", job.name, tg)
					continue
				}
				families := scrape(t, sc.Scheme+"://"+ls[model.AddressLabel]+sc.MetricsPath)
				switch job.name {
				case grafana.JobApp:
					checkTenantLabels(t, families, ls["tenant"])
				case grafana.JobProxy:
					if _, ok := families[proxy.MetricRoutes]; !ok {
						t.Errorf("job %s scrapes %s, which has no %s: not the proxy's admin port", job.name, ls[model.AddressLabel], proxy.MetricRoutes)
					}
				}
				seen.add(familyLabelsOf(families))
			}
		}
	})

	t.Run("dashboards", func(t *testing.T) {
		seen.add(scrapeLabels(t, "http://"+c.addr("proxy", "8001")+"/metrics"))
		seen.add(scrapeLabels(t, "http://"+dev.admin+"/metrics"))
		for _, addr := range dev.appAddrs(t) {
			seen.add(scrapeLabels(t, "http://"+addr+"/metrics"))
		}
		err := eventually(60*time.Second, func() error {
			f := scrapeLabels(t, "http://"+dev.admin+"/metrics")
			if _, ok := f[supervisor.MetricRestartsTotal]; !ok {
				return fmt.Errorf("campus dev does not expose %s after a child crashed", supervisor.MetricRestartsTotal)
			}
			seen.add(f)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		checkExposed(t, seen, jobTargetLabels(cfg))
	})
}

// ---- campus dev ----

type devSystem struct {
	proc                *process
	proxy, admin, mongo string
}

func startDev(t *testing.T) *devSystem {
	t.Helper()
	d := &devSystem{proxy: freeAddr(t), admin: freeAddr(t), mongo: freeAddr(t)}
	d.proc = start(t, "campus dev", []string{campusBin, "dev", "--data", t.TempDir(),
		"--listen", d.proxy, "--admin-listen", d.admin, "--mongo-listen", d.mongo,
		"--registry", "embedded", "--log-format", "json"}, nil)
	if err := eventually(3*time.Minute, func() error {
		if d.proc.exited() {
			return fmt.Errorf("campus dev exited: %v", d.proc.err)
		}
		ts, err := d.tenants()
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return fmt.Errorf("no tenant routed yet")
		}
		return routesReady(d.admin, ts, nil)
	}); err != nil {
		t.Fatalf("campus dev: %v", err)
	}
	return d
}

// tenants are the tenants dev routes (it seeds its own), from /routes.
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

// appAddrs are the addresses of dev's app children, from /routes.
func (d *devSystem) appAddrs(t *testing.T) []string {
	t.Helper()
	rt, err := getRoutes(d.admin)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, ri := range rt.Hosts {
		for _, in := range ri.Instances {
			set[in.Addr] = true
		}
	}
	return sortedKeys(set)
}

// crashChild kills one of dev's app children, as a crash would.
func (d *devSystem) crashChild(t *testing.T) {
	t.Helper()
	pid := d.proc.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("find campus dev's children: %v", err)
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "\x00app\x00") {
			if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
				t.Fatalf("kill dev child %d: %v", child, err)
			}
			return
		}
	}
	t.Fatalf("campus dev (pid %d) has no app child", pid)
}

// ---- the compose services, locally ----

type composeRun struct {
	top     *testing.T // the processes live until it ends
	p       *types.Project
	consul  string
	addrs   map[string]map[string]string // service → container port → local address
	secrets map[string]string            // secret → local file
	procs   map[string]*process
}

func newComposeRun(t *testing.T, p *types.Project, consulAddr, mongoURI string) *composeRun {
	t.Helper()
	c := &composeRun{top: t, p: p, consul: consulAddr, addrs: map[string]map[string]string{},
		secrets: map[string]string{}, procs: map[string]*process{}}
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
		if strings.HasPrefix(name, "mongodb_uri_") {
			v = mongoURI // the stand-in server has no users
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
	return argv, serviceEnv(s, r)
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

func waitCampusHealthy(t *testing.T, proc *process, url string) {
	t.Helper()
	var last result
	err := eventually(90*time.Second, func() error {
		if proc.exited() {
			return fmt.Errorf("%s exited: %v", proc.name, proc.err)
		}
		last = runCampus(t, []string{"healthcheck", url}, nil, 10*time.Second)
		if last.code != 0 {
			return fmt.Errorf("campus healthcheck %s: exit %d: %s", url, last.code, strings.TrimSpace(last.stderr))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s never became healthy: %v", proc.name, err)
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

// discover runs Prometheus's Consul discovery (the code Prometheus runs)
// with the job's settings against the stand-in agent, until it reports
// count targets.
func discover(t *testing.T, sd *promconsul.SDConfig, consulAddr string, count int) []model.LabelSet {
	t.Helper()
	conf := *sd
	conf.Server = consulAddr
	conf.Datacenter = "dc1" // the stand-in has no /v1/agent/self to ask
	reg := prometheus.NewRegistry()
	metrics := conf.NewDiscovererMetrics(reg, discovery.NewRefreshMetrics(reg))
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	defer metrics.Unregister()
	d, err := conf.NewDiscoverer(discovery.DiscovererOptions{Logger: promslog.NewNopLogger(), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch := make(chan []*targetgroup.Group)
	go d.Run(ctx, ch)
	var last []model.LabelSet
	for {
		select {
		case groups := <-ch:
			last = nil
			for _, g := range groups {
				for _, tgt := range g.Targets {
					ls := tgt.Clone()
					for k, v := range g.Labels {
						if _, ok := ls[k]; !ok {
							ls[k] = v
						}
					}
					last = append(last, ls)
				}
			}
			if len(last) == count {
				return last
			}
		case <-ctx.Done():
			t.Fatalf("Consul discovery of %v: %d targets, want %d: %v", sd.Services, len(last), count, last)
		}
	}
}

func targetLabelsFromSD(job string, ls model.LabelSet) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range ls {
		b.Set(string(k), string(v))
	}
	b.Set(model.JobLabel, job)
	return b.Labels()
}

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

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
