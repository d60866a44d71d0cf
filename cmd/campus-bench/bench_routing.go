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
	"os/exec"
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
		ownConsul   = fs.Bool("start-consul", false, "with --registry consul: start a real Consul dev agent (built by internal/engines into ~/.cache/campus/engines) for this run instead of using CONSUL_HTTP_ADDR")
		fillCheck   = fs.Duration("fill-check-interval", 0, "with Consul and --fill-nodes 0: the /readyz check interval of the --tenants background instances (default --consul-check-interval); a long one keeps 10,000 checks from swamping a small machine, while the measured --changes use --consul-check-interval")
		fillNodes   = fs.Int("fill-nodes", 10, "with Consul: register the --tenants background instances in the catalog, passing, spread over this many external nodes (as a fleet of machines holds them; consul-esm style) instead of as HTTP checks on the one agent; 0: on the agent, as before. The measured --changes are always agent-registered with their /readyz check")
		fillWorkers = fs.Int("fill-workers", 8, "with --fill-nodes: tenants created and registered at once while filling")
	)
	ro.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *ownConsul {
		ro.kind = "consul"
		dir, err := os.MkdirTemp("", "campus-bench-consul-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		agent, err := engines.StartConsul(ctx, engines.ConsulOptions{Dir: dir})
		if err != nil {
			return fmt.Errorf("start a Consul agent (internal/engines/build.sh builds it): %w", err)
		}
		defer agent.Stop()
		// This process's registries and the campus proxy child read it.
		os.Setenv("CONSUL_HTTP_ADDR", agent.Addr)
		os.Unsetenv("CONSUL_HTTP_TOKEN")
		fmt.Fprintf(e.stdout, "started Consul dev agent at %s\n", agent.Addr)
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

	// Propagation and memory, against a real `campus proxy` process
	// watching the same registry.
	self, err := campusBinary()
	if err != nil {
		return err
	}
	proxyAddr, adminAddr, err := twoFreeAddrs()
	if err != nil {
		return err
	}
	child := exec.CommandContext(ctx, self, "proxy", "--registry", kind, "--data", ro.data,
		"--consul-prefix", ro.consulPrefix, "--listen", proxyAddr, "--admin-listen", adminAddr,
		"--hold-timeout", "-1ns", "--log-level", "warn")
	child.Stderr = e.stderr
	if err := child.Start(); err != nil {
		return fmt.Errorf("start campus proxy: %w", err)
	}
	defer func() {
		child.Process.Signal(os.Interrupt)
		child.Wait()
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	routed := func(host string) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxyAddr+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	// Wait until the proxy routes every tenant (the last one created).
	lastHost := fmt.Sprintf("%s-%d.bench.localhost", prefix, *tenants-1)
	t0 := time.Now()
	for !routed(lastHost) {
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("campus proxy did not route %d tenants within 2 minutes", *tenants)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(e.stdout, "campus proxy routed all tenants %s after start\n", time.Since(t0).Round(time.Millisecond))
	rssAtN := rssOf(child.Process.Pid)
	var lat, creates, registers []time.Duration
	for i := range *changes {
		t0 := time.Now()
		t, err := add(changeReg, *tenants+i)
		if err != nil {
			return err
		}
		for !routed(t.PrimaryHost) {
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("tenant %s not routable after 30s", t.Name)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
		creates, registers = append(creates, lastCreate), append(registers, lastRegister)
	}
	// The other way, which only the watch brings (a lookup never unroutes
	// a host the table has): a tenant deleted → its host answers 404.
	var gone []time.Duration
	for i := range min(10, *changes) {
		name := fmt.Sprintf("%s-%d", prefix, *tenants+i)
		t0 := time.Now()
		if _, err := changeReg.MarkDeleted(ctx, name, time.Now().Add(time.Hour)); err != nil {
			return fmt.Errorf("delete tenant %s: %w", name, err)
		}
		for routed(name + ".bench.localhost") {
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("tenant %s still routed 30s after its delete", name)
			}
			time.Sleep(time.Millisecond)
		}
		gone = append(gone, time.Since(t0))
	}
	slices.Sort(gone)
	slowest := slowestChanges(lat, 3)
	slices.Sort(lat)
	slices.Sort(rebuilds)
	slices.Sort(creates)
	slices.Sort(registers)
	pct := func(d []time.Duration, q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	fmt.Fprintf(e.stdout, "\n%-48s %s\n", "metric", "value")
	fmt.Fprintf(e.stdout, "%-48s %s\n", "propagation p50 (create+register → routed)", pct(lat, 0.50).Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", "propagation p99", pct(lat, 0.99).Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", "propagation max", lat[len(lat)-1].Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", "… slowest changes (#: time)", slowest)
	if len(gone) > 0 {
		fmt.Fprintf(e.stdout, "%-48s %s / %s\n", fmt.Sprintf("delete → 404 (watch only) p50 / max of %d", len(gone)), pct(gone, 0.50).Round(100*time.Microsecond), gone[len(gone)-1].Round(100*time.Microsecond))
	}
	fmt.Fprintf(e.stdout, "%-48s %s / %s\n", "… of which CreateTenant call p50 / p99", pct(creates, 0.50).Round(100*time.Microsecond), pct(creates, 0.99).Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s / %s\n", "… of which /readyz + RegisterInstance p50 / p99", pct(registers, 0.50).Round(100*time.Microsecond), pct(registers, 0.99).Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", fmt.Sprintf("first table build (%d tenants)", *tenants), first.Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %s\n", "table rebuild after one change (median of 5)", rebuilds[len(rebuilds)/2].Round(100*time.Microsecond))
	fmt.Fprintf(e.stdout, "%-48s %.1f MB\n", fmt.Sprintf("campus proxy RSS with %d tenants", *tenants), float64(rssAtN)/1e6)
	fmt.Fprintf(e.stdout, "%-48s %.1f MB\n", fmt.Sprintf("campus proxy RSS after %d more", *changes), float64(rssOf(child.Process.Pid))/1e6)
	if lk := scrapeByLabel(ctx, adminAddr, proxy.MetricHostLookups); len(lk) > 0 {
		fmt.Fprintf(e.stdout, "%-48s %s\n", "campus proxy host lookups on a miss, by result", lk)
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
