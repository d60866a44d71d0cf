package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
)

// proxyRun is what `bench routing` measures of one `campus proxy` binary
// over the filled registry (issue 24: the old per-node watch and the new
// one side by side, on the same agent and fill).
type proxyRun struct {
	label, bin string
	failed     string // why the run stopped early, if it did

	routedAll               time.Duration
	lat, creates, registers []time.Duration
	gone                    []time.Duration
	rssAtN, rssAfter        int64
	conns                   int // most proxy→agent connections seen (ss), -1 unknown
	refusals                int64
	lookups                 string
}

// proxyMeasure holds what every run shares.
type proxyMeasure struct {
	e                                    *env
	kind, data, consulPrefix, namePrefix string
	tenants, changes                     int
	agentAddr                            string // host:port of the Consul agent, "" for the embedded registry
	add                                  func(registry.Registry, int) (registry.Tenant, error)
	changeReg                            registry.Registry
	lastCreate                           *time.Duration
	lastRegister                         *time.Duration
}

// run starts bin as `campus proxy` and measures it; the changes use
// tenants first, first+1, … (each run its own).
func (m *proxyMeasure) run(ctx context.Context, label, bin string, first int) (res proxyRun) {
	res = proxyRun{label: label, bin: bin, conns: -1}
	proxyAddr, adminAddr, err := twoFreeAddrs()
	if err != nil {
		res.failed = err.Error()
		return res
	}
	refusals := &refusalCounter{w: m.e.stderr}
	child := exec.CommandContext(ctx, bin, "proxy", "--registry", m.kind, "--data", m.data,
		"--consul-prefix", m.consulPrefix, "--listen", proxyAddr, "--admin-listen", adminAddr,
		"--hold-timeout", "-1ns", "--log-level", "warn")
	child.Stderr = refusals
	if err := child.Start(); err != nil {
		res.failed = fmt.Sprintf("start campus proxy: %v", err)
		return res
	}
	defer func() {
		child.Process.Signal(os.Interrupt)
		child.Wait()
		res.refusals = refusals.n.Load()
	}()
	var sampler sync.WaitGroup
	sctx, stopSampling := context.WithCancel(ctx)
	var peak atomic.Int64
	peak.Store(-1)
	if m.agentAddr != "" {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			for {
				if n, err := connsTo(child.Process.Pid, m.agentAddr); err == nil && int64(n) > peak.Load() {
					peak.Store(int64(n))
				}
				select {
				case <-sctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	defer func() {
		stopSampling()
		sampler.Wait()
		res.conns = int(peak.Load())
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
	lastHost := fmt.Sprintf("%s-%d.bench.localhost", m.namePrefix, m.tenants-1)
	t0 := time.Now()
	for !routed(lastHost) {
		if time.Since(t0) > 2*time.Minute {
			res.failed = fmt.Sprintf("did not route %d tenants within 2 minutes", m.tenants)
			return res
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.routedAll = time.Since(t0)
	res.rssAtN = rssOf(child.Process.Pid)
	for i := range m.changes {
		t0 := time.Now()
		t, err := m.add(m.changeReg, first+i)
		if err != nil {
			res.failed = fmt.Sprintf("change %d: %v", i+1, err)
			return res
		}
		for !routed(t.PrimaryHost) {
			if time.Since(t0) > 30*time.Second {
				res.failed = fmt.Sprintf("tenant %s not routable after 30s", t.Name)
				return res
			}
			time.Sleep(time.Millisecond)
		}
		res.lat = append(res.lat, time.Since(t0))
		res.creates, res.registers = append(res.creates, *m.lastCreate), append(res.registers, *m.lastRegister)
	}
	// The other way, which only the watch brings (a lookup never unroutes
	// a host the table has): a tenant deleted → its host answers 404.
	for i := range min(20, m.changes) {
		name := fmt.Sprintf("%s-%d", m.namePrefix, first+i)
		t0 := time.Now()
		if _, err := m.changeReg.MarkDeleted(ctx, name, time.Now().Add(time.Hour)); err != nil {
			res.failed = fmt.Sprintf("delete tenant %s: %v", name, err)
			return res
		}
		for routed(name + ".bench.localhost") {
			if time.Since(t0) > 30*time.Second {
				res.failed = fmt.Sprintf("tenant %s still routed 30s after its delete", name)
				return res
			}
			time.Sleep(time.Millisecond)
		}
		res.gone = append(res.gone, time.Since(t0))
	}
	res.rssAfter = rssOf(child.Process.Pid)
	res.lookups = scrapeByLabel(ctx, adminAddr, proxy.MetricHostLookups)
	return res
}

// printProxyRuns writes the runs' table, one column per run.
func printProxyRuns(w io.Writer, tenants, changes int, runs []proxyRun) {
	pct := func(d []time.Duration, q float64) string {
		if len(d) == 0 {
			return "-"
		}
		d = slices.Clone(d)
		slices.Sort(d)
		return d[min(len(d)-1, int(q*float64(len(d))))].Round(100 * time.Microsecond).String()
	}
	row := func(name string, f func(r proxyRun) string) {
		fmt.Fprintf(w, "%-50s", name)
		for _, r := range runs {
			fmt.Fprintf(w, " %-22s", f(r))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	row("metric", func(r proxyRun) string { return r.label })
	row("proxy routed all tenants after start", func(r proxyRun) string {
		if r.routedAll == 0 {
			return "-"
		}
		return r.routedAll.Round(time.Millisecond).String()
	})
	row("propagation p50 (create+register → routed)", func(r proxyRun) string { return pct(r.lat, 0.50) })
	row("propagation p99", func(r proxyRun) string { return pct(r.lat, 0.99) })
	row("propagation max", func(r proxyRun) string { return pct(r.lat, 1) })
	row("… slowest changes (#: time)", func(r proxyRun) string { return slowestChanges(r.lat, 2) })
	row("delete → 404 (watch only) p50", func(r proxyRun) string { return pct(r.gone, 0.50) })
	row("delete → 404 p99 (= max of ≤ 20)", func(r proxyRun) string { return pct(r.gone, 0.99) })
	row("… CreateTenant call p50 / p99", func(r proxyRun) string { return pct(r.creates, 0.5) + " / " + pct(r.creates, 0.99) })
	row("… /readyz + RegisterInstance p50 / p99", func(r proxyRun) string { return pct(r.registers, 0.5) + " / " + pct(r.registers, 0.99) })
	row("proxy→agent connections, most seen (ss)", func(r proxyRun) string { return strconv.Itoa(r.conns) })
	row("429/503 lines in the proxy's log", func(r proxyRun) string { return strconv.FormatInt(r.refusals, 10) })
	row(fmt.Sprintf("proxy RSS with %d tenants", tenants), func(r proxyRun) string { return fmt.Sprintf("%.1f MB", float64(r.rssAtN)/1e6) })
	row(fmt.Sprintf("proxy RSS after %d more", changes), func(r proxyRun) string { return fmt.Sprintf("%.1f MB", float64(r.rssAfter)/1e6) })
	row("host lookups on a miss, by result", func(r proxyRun) string { return r.lookups })
	for _, r := range runs {
		if r.failed != "" {
			fmt.Fprintf(w, "%s: FAILED: %s\n", r.label, r.failed)
		}
	}
}

// connsTo counts pid's established TCP connections to addr, with ss.
func connsTo(pid int, addr string) (int, error) {
	out, err := exec.Command("ss", "-Htnp", "state", "established", "dst", addr).Output()
	if err != nil {
		return 0, fmt.Errorf("ss: %w", err)
	}
	n := 0
	needle := []byte(fmt.Sprintf("pid=%d,", pid))
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.Contains(line, needle) {
			n++
		}
	}
	return n, nil
}

// refusalCounter passes a child's log through and counts the lines that
// report Consul answering 429 or 503 (the old client's "Unexpected
// response code: 429", the new one's retries and give-ups).
type refusalCounter struct {
	w io.Writer
	n atomic.Int64
}

func (c *refusalCounter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		for _, pat := range []string{"code: 429", "code: 503", "status=429", "status=503", "answered 429", "answered 503"} {
			if strings.Contains(line, pat) {
				c.n.Add(1)
				break
			}
		}
	}
	return c.w.Write(p)
}
