package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
)

// runBenchColdstart: `campus bench coldstart` (issue 12).
func runBenchColdstart(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench coldstart", "", `Measure cold starts: the time from a request for an idle tenant (no process) to its
200, through the proxy, over --wakes wakes. Runs what campus dev runs on loopback (embedded
database, registry, supervisor with real 'campus app' children, proxy) with --tenants
tenants that start idle and stop after --idle-timeout; each tenant is woken in turn once it
is idle again. A warm request (the next one, same tenant) is measured beside each.

With --sizes, one school per size (filled by an import, as `+"`campus manage T students import`"+`),
each woken --wakes times from zero: start → ready, the first GET /, the first search and the
app's RSS per size; --before BIN measures another campus binary's apps beside, in alternating
wakes; --import-rows then imports that many rows into the biggest school while it is read.`)
	var (
		mo        mongoOptions
		tenants   = fs.Int("tenants", 10, "tenants woken in turn")
		wakes     = fs.Int("wakes", 100, "cold starts to measure")
		path      = fs.String("path", "/", "path requested (/ reads the database)")
		maxStarts = fs.Int("max-starts", supervisor.DefaultMaxStarts, "the supervisor's start cap")
		pool      = fs.Int("pool", 0, "pre-started processes holding no tenant (0: none)")
		compare   = fs.Bool("compare", false, "measure without a pool and with --pool (default 2), in alternating rounds")
		schools   = fs.String("sizes", "", "school sizes in students, e.g. 0,10000,100000: one school each, woken --wakes times (the other flags but --max-starts do not apply)")
		before    = fs.String("before", "", "with --sizes: another campus binary (the tree before a change), measured beside in alternating wakes")
		importN   = fs.Int("import-rows", 0, "with --sizes: rows imported into the biggest school while two clients read it")
		importVia = fs.String("import-via", "cli", "with --import-rows: how the rows are imported while the school is read: cli (another process), browser (its import page), or cli,browser (one after the other)")
		previews  = fs.Int("previews", 0, "with --sizes and --import-rows: people uploading that many rows to the biggest school's import page at once (previews), its RSS measured")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *tenants < 1 || *wakes < 1 {
		return usageErr("--tenants and --wakes must be at least 1")
	}
	if *schools != "" {
		sz, err := parseSizes(*schools)
		if err != nil {
			return err
		}
		for _, via := range strings.Split(*importVia, ",") {
			if via != "cli" && via != "browser" {
				return usageErr("--import-via: %q is neither cli nor browser", via)
			}
		}
		return runColdSizes(ctx, e, coldSizesConfig{sizes: sz, wakes: *wakes, before: *before, importRows: *importN, importVia: strings.Split(*importVia, ","), previews: *previews, maxStarts: *maxStarts, mo: mo})
	}
	type run struct {
		name       string
		sys        *scaleSystem
		cold, warm durations
		failed     int
	}
	var runs []*run
	sizes := []int{*pool}
	if *compare {
		sizes = []int{0, max(*pool, 2)}
	}
	for _, size := range sizes {
		s, err := startScaleSystem(ctx, scaleSystemConfig{tenants: *tenants, idleTimeout: registry.MinIdleTimeout, health: 200 * time.Millisecond,
			maxStarts: *maxStarts, holdTimeout: time.Minute, pool: size, migrate: -1, mo: mo, logger: benchScaleLogger(e), progress: e.stderr})
		if err != nil {
			return err
		}
		defer s.close()
		name := "no pool"
		if size > 0 {
			name = fmt.Sprintf("pool of %d", size)
		}
		runs = append(runs, &run{name: name, sys: s})
	}

	fmt.Fprintf(e.stderr, "measuring %d cold starts per system...\n", *wakes)
	for i := 0; i < *wakes; i++ {
		for _, r := range runs { // alternating, so that the machine's noise falls on every system
			s := r.sys
			t := s.tenants[i%len(s.tenants)]
			if err := s.waitStates(ctx, []registry.Tenant{t}, time.Minute, supervisor.StateIdle); err != nil {
				return err
			}
			s.waitPool(ctx)
			d, code, err := s.get(ctx, t, *path)
			if err != nil || code != http.StatusOK {
				r.failed++
				fmt.Fprintf(e.stderr, "%s: cold request for %s: status %d, %v\n", r.name, t.Name, code, err)
				continue
			}
			r.cold = append(r.cold, d)
			if d, code, err := s.get(ctx, t, *path); err == nil && code == http.StatusOK {
				r.warm = append(r.warm, d)
			}
		}
	}
	fmt.Fprintf(e.stdout, "campus bench coldstart: %d wakes per system over %d tenants, GET %s, GOMAXPROCS=%d, max starts %d\n\n",
		*wakes, *tenants, *path, runtimeProcs(), *maxStarts)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "system\trequest\tn\tfailed\tp50\tp90\tp99\tmax\tstart→ready (mean)\t")
	failed := 0
	for _, r := range runs {
		failed += r.failed
		startMean := "-"
		if sum, n := histogram(r.sys, supervisor.MetricStartSeconds); n > 0 {
			startMean = msf(time.Duration(sum / float64(n) * float64(time.Second)))
		}
		fmt.Fprintf(w, "%s\tcold (idle tenant → 200)\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.name, len(r.cold), r.failed,
			msf(r.cold.pct(50)), msf(r.cold.pct(90)), msf(r.cold.pct(99)), msf(r.cold.max()), startMean)
		fmt.Fprintf(w, "%s\twarm (the next request)\t%d\t\t%s\t%s\t%s\t%s\t\t\n", r.name, len(r.warm),
			msf(r.warm.pct(50)), msf(r.warm.pct(90)), msf(r.warm.pct(99)), msf(r.warm.max()))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "goal: cold p50 ≤ 50 ms, p99 ≤ 150 ms\n")
	if failed > 0 {
		return errBenchFailed
	}
	return nil
}

// runBenchStampede: `campus bench stampede` (issue 12).
func runBenchStampede(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench stampede", "", `The 8 a.m. stampede: --tenants idle tenants (no process) get one request each, all at
once, through the proxy; every one must answer 200. Prints the time to the last answer and
the latency distribution. Same system as 'campus bench coldstart'.`)
	var (
		mo        mongoOptions
		tenants   = fs.Int("tenants", 500, "idle tenants, one request each")
		path      = fs.String("path", "/", "path requested")
		maxStarts = fs.Int("max-starts", supervisor.DefaultMaxStarts, "the supervisor's start cap")
		hold      = fs.Duration("hold-timeout", 5*time.Minute, "the proxy's hold timeout")
		pool      = fs.Int("pool", 0, "pre-started processes holding no tenant (0: none)")
		health    = fs.Duration("health-interval", supervisor.DefaultHealthInterval, "the supervisor's liveness (/healthz) check interval")
		profile   = fs.String("cpuprofile", "", "write a CPU profile of this process (supervisor, proxy, registry, database) during the stampede to this file")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *tenants < 1 {
		return usageErr("--tenants must be at least 1")
	}
	s, err := startScaleSystem(ctx, scaleSystemConfig{tenants: *tenants, idleTimeout: time.Hour,
		maxStarts: *maxStarts, holdTimeout: *hold, pool: *pool, migrate: -1, health: *health, mo: mo, logger: benchScaleLogger(e), progress: e.stderr})
	if err != nil {
		return err
	}
	defer s.close()

	fmt.Fprintf(e.stderr, "%d requests at once...\n", *tenants)
	var (
		mu     sync.Mutex
		lat    durations
		failed int
		wg     sync.WaitGroup
		// failures by status ("error": no answer)
		failures = map[string]int{}
	)
	stopProfile, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	cpu0, tables0 := processCPU(), counterSum(s, proxy.MetricTableUpdates)
	start := time.Now()
	gate := make(chan struct{})
	for _, t := range s.tenants {
		wg.Go(func() {
			<-gate
			d, code, err := s.get(ctx, t, *path)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || code != http.StatusOK {
				failed++
				why := fmt.Sprint(code)
				if err != nil {
					why = "error"
				}
				failures[why]++
				return
			}
			lat = append(lat, d)
		})
	}
	close(gate)
	wg.Wait()
	last := time.Since(start)
	cpu := stampedeCPU{this: processCPU() - cpu0, apps: cpuTime(s.childPIDs()...),
		tables: counterSum(s, proxy.MetricTableUpdates) - tables0}
	if err := stopProfile(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "campus bench stampede: %d idle tenants, one GET %s each at once, GOMAXPROCS=%d, max starts %d, pool %d, health interval %s\n\n",
		*tenants, *path, runtimeProcs(), *maxStarts, *pool, *health)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "tenants\t200\tfailed\ttime to last\tp50\tp90\tp99\t")
	fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", *tenants, len(lat), failed, msf(last), msf(lat.pct(50)), msf(lat.pct(90)), msf(lat.pct(99)))
	if err := w.Flush(); err != nil {
		return err
	}
	if sum, n := histogram(s, supervisor.MetricStartSeconds); n > 0 {
		fmt.Fprintf(e.stdout, "\nsupervisor: process start → first 200 from /readyz: mean %s over %d starts (%.0f starts/s)\n",
			msf(time.Duration(sum/float64(n)*float64(time.Second))), n, float64(n)/last.Seconds())
	}
	cpu.print(e.stdout, histogramCount(s, supervisor.MetricStartSeconds))
	fmt.Fprintf(e.stdout, "supervisor: liveness restarts %.0f\n", counterSum(s, supervisor.MetricLivenessRestartsTotal))
	if failed > 0 {
		fmt.Fprintf(e.stdout, "failed requests by status: %v\n", failures)
		return errBenchFailed
	}
	return nil
}

// counterSum returns the sum of a counter of the system's metrics over
// its labels.
func counterSum(s *scaleSystem, name string) float64 {
	mfs, err := s.metrics.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

// histogram returns the sum and count of a histogram of the system's
// metrics.
func histogram(s *scaleSystem, name string) (float64, uint64) {
	mfs, err := s.metrics.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				return h.GetSampleSum(), h.GetSampleCount()
			}
		}
	}
	return 0, 0
}
