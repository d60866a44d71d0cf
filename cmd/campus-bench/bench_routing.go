package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// runBenchRouting measures how fast registry changes reach the proxy's
// routing table, and what a table of many tenants costs.
func runBenchRouting(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench routing", "", `Fill a registry with --tenants tenants of one instance each, run a proxy over it, then
measure: propagation (a tenant created and its instance registered → first 200 through the
proxy) for --changes new tenants, p50/p99; the proxy's table rebuild time for one change
among all tenants; and the process's memory. Uses the embedded registry in a temporary
directory, or Consul with --registry consul (CONSUL_HTTP_ADDR); its tenants are removed after.`)
	var (
		ro          registryOptions
		tenants     = fs.Int("tenants", 10000, "tenants in the registry")
		changes     = fs.Int("changes", 100, "tenants added one by one while the proxy runs")
		ownConsul   = fs.Bool("start-consul", false, "with --registry consul: start a real Consul agent, a single server with Consul's default limits (built by internal/engines into ~/.cache/campus/engines) for this run instead of using CONSUL_HTTP_ADDR")
		fillCheck   = fs.Duration("fill-check-interval", 0, "with Consul and --fill-nodes 0: the /readyz check interval of the --tenants background instances (default --consul-check-interval); a long one keeps 10,000 checks from swamping a small machine, while the measured --changes use --consul-check-interval")
		fillNodes   = fs.Int("fill-nodes", 10, "with Consul: register the --tenants background instances in the catalog, passing, spread over this many external nodes (as a fleet of machines holds them; consul-esm style) instead of as HTTP checks on the one agent; 0: on the agent, as before. The measured --changes are always agent-registered with their /readyz check")
		fillWorkers = fs.Int("fill-workers", 8, "with --fill-nodes: tenants created and registered at once while filling")
		compare     = fs.String("compare-campus", "", "another campus binary (e.g. an older tree's) whose `campus proxy` is measured after this one's, on the same registry, with new tenants of its own")
	)
	ro.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	refusals := &refusalCounter{w: e.stderr}
	logger := slog.New(slog.NewTextHandler(refusals, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *ownConsul {
		ro.kind = "consul"
		dir, err := os.MkdirTemp("", "campus-bench-consul-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// A server with Consul's default limits, as an operator runs it
		// (200 connections per client address).
		agent, err := engines.StartConsul(ctx, engines.ConsulOptions{Dir: dir, Persistent: true})
		if err != nil {
			return fmt.Errorf("start a Consul agent (internal/engines/build.sh builds it): %w", err)
		}
		defer agent.Stop()
		// This process's registries and the campus proxy child read it.
		os.Setenv("CONSUL_HTTP_ADDR", agent.Addr)
		os.Unsetenv("CONSUL_HTTP_TOKEN")
		fmt.Fprintf(e.stdout, "started Consul server agent (default limits) at %s\n", agent.Addr)
	}
	kind, err := ro.backend(e)
	if err != nil {
		return err
	}
	if kind == "embedded" {
		dir, err := os.MkdirTemp("", "campus-bench-routing-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		ro.data = dir
	}
	measured := ro
	if kind == "consul" && *fillCheck > 0 {
		ro.consulCheck = *fillCheck
	}
	reg, err := ro.open(ctx, e, logger, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	changeReg := reg
	if measured.consulCheck != ro.consulCheck {
		if changeReg, err = measured.open(ctx, e, logger, nil); err != nil {
			return err
		}
		defer changeReg.Close()
	}

	// Every instance points at one tiny upstream that answers any host.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go httpserve.Serve(ctx, httpserve.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}), logger), upLn)
	upstream := upLn.Addr().String()

	prefix := fmt.Sprintf("b%x", time.Now().UnixNano()&0xffffff)
	var created []string
	defer func() {
		if *ownConsul {
			return // the agent and everything in it go away with it
		}
		cctx := context.WithoutCancel(ctx)
		for _, name := range created {
			reg.DeregisterInstance(cctx, name)
			reg.DeleteTenant(cctx, name)
		}
	}()
	var lastCreate, lastRegister time.Duration // of the last add
	add := func(reg registry.Registry, i int) (registry.Tenant, error) {
		name := fmt.Sprintf("%s-%d", prefix, i)
		t, err := registry.NewTenant(name, []string{name + ".bench.localhost"}, "")
		if err != nil {
			return t, err
		}
		t0 := time.Now()
		if t, err = reg.CreateTenant(ctx, t); err != nil {
			return t, fmt.Errorf("create tenant %s: %w", name, err)
		}
		created = append(created, name)
		lastCreate = time.Since(t0)
		defer func() { lastRegister = time.Since(t0) - lastCreate }()
		// As the supervisor does: Healthy only once /readyz answered, and
		// each call bounded (an agent swamped by checks can stall one).
		in := registry.Instance{ID: name, Tenant: name, Addr: upstream, Healthy: ready(ctx, upstream)}
		for attempt := 1; ; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = reg.RegisterInstance(rctx, in)
			cancel()
			if err == nil || attempt == 3 || ctx.Err() != nil {
				return t, err
			}
			logger.Warn("register instance: retrying", "instance", name, "err", err)
		}
	}
	var fill *catalogFill
	if cr, ok := reg.(*consul.Registry); ok && *fillNodes > 0 {
		fill = &catalogFill{reg: cr, nodes: *fillNodes}
		if !*ownConsul {
			defer fill.remove(context.WithoutCancel(ctx))
		}
	}
	fmt.Fprintf(e.stdout, "campus bench routing: %s registry, %d tenants, %d changes\n", kind, *tenants, *changes)
	start := time.Now()
	if fill == nil {
		for i := range *tenants {
			if _, err := add(reg, i); err != nil {
				return err
			}
		}
	} else {
		if err := fillCatalog(ctx, reg, fill, prefix, upstream, *tenants, *fillWorkers, &created); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "fill: %d instances in the catalog on %d external nodes, passing\n", *tenants, *fillNodes)
	}
	fmt.Fprintf(e.stdout, "filled registry in %s\n", time.Since(start).Round(time.Millisecond))

	// Rebuild cost, in this process: the first table, then one change
	// among all tenants (what every later registry event costs).
	p, err := proxy.New(proxy.Config{Logger: logger, Registerer: prometheus.NewRegistry(), HoldTimeout: -1})
	if err != nil {
		return err
	}
	// A registry of its own for the snapshot, closed after: its watcher
	// would otherwise keep re-reading every list on every change, beside
	// the proxy's (the registrants of the changes do not watch).
	snapReg, err := ro.open(ctx, e, logger, nil)
	if err != nil {
		return err
	}
	snap, err := snapReg.Snapshot(ctx)
	snapReg.Close()
	if err != nil {
		return err
	}
	start = time.Now()
	p.Update(snap)
	first := time.Since(start)
	var rebuilds []time.Duration
	for i := range 5 {
		s := snap
		s.Version = snap.Version + uint64(i) + 1
		s.Instances = slices.Clone(snap.Instances)
		s.Instances[i].Healthy = !s.Instances[i].Healthy
		t0 := time.Now()
		p.Update(s)
		rebuilds = append(rebuilds, time.Since(t0))
	}

	// Propagation, connections and memory, against a real `campus proxy`
	// process watching the same registry; then, with --compare-campus,
	// the same against that binary's proxy (its own new tenants).
	self, err := campusBinary()
	if err != nil {
		return err
	}
	m := &proxyMeasure{e: e, kind: kind, data: ro.data, consulPrefix: ro.consulPrefix, namePrefix: prefix,
		tenants: *tenants, changes: *changes, add: add, changeReg: changeReg, lastCreate: &lastCreate, lastRegister: &lastRegister}
	if kind == "consul" {
		m.agentAddr = strings.TrimPrefix(e.getenv("CONSUL_HTTP_ADDR"), "http://")
		if m.agentAddr == "" {
			m.agentAddr = "127.0.0.1:8500"
		}
	}
	runs := []proxyRun{m.run(ctx, "this campus", self, *tenants)}
	if *compare != "" {
		runs = append(runs, m.run(ctx, "--compare-campus", *compare, *tenants+*changes))
	}
	fmt.Fprintf(e.stdout, "\n%-48s %s\n", "metric (this process)", "value")
	fmt.Fprintf(e.stdout, "%-48s %s\n", fmt.Sprintf("first table build (%d tenants)", *tenants), first.Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", "table rebuild after one change (median of 5)", rebuilds[len(rebuilds)/2].Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %d\n", "429/503 lines in this process's log", refusals.n.Load())
	printProxyRuns(e.stdout, *tenants, *changes, runs)
	if runs[0].failed != "" {
		return fmt.Errorf("campus proxy: %s", runs[0].failed)
	}
	return nil
}

// scrapeByLabel reads a labelled counter from a /metrics page as
// "value=count ..." (label values in page order); "" when absent.
func scrapeByLabel(ctx context.Context, addr, name string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		if _, v, ok := strings.Cut(labels, "=\""); ok {
			out = append(out, strings.TrimSuffix(v, "\"")+"="+value)
		}
	}
	return strings.Join(out, " ")
}

// ready reports whether addr's /readyz answers 200 now.
func ready(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var readyClient = &http.Client{Timeout: 2 * time.Second}

// twoFreeAddrs returns two loopback addresses that were free a moment ago.
func twoFreeAddrs() (string, string, error) {
	var addrs [2]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs[0], addrs[1], nil
}

// rssOf reads a process's resident set size from /proc (Linux), 0 elsewhere.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// slowestChanges lists the n slowest of lat (in change order) as
// "#i: d, ...", to tell a warm-up from a steady tail.
func slowestChanges(lat []time.Duration, n int) string {
	idx := make([]int, len(lat))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(lat[b], lat[a]) })
	var out []string
	for _, i := range idx[:min(n, len(idx))] {
		out = append(out, fmt.Sprintf("#%d: %s", i+1, lat[i].Round(100*time.Microsecond)))
	}
	return strings.Join(out, ", ")
}
