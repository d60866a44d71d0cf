package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/tenancy"
)

// runBenchDensityMix: `campus-bench density mix` (issue 20): the density
// bench on schools of realistic sizes, with and without the memory budget,
// side by side in one run over the same data.
func runBenchDensityMix(ctx context.Context, e *env, args []string) error {
	fs := newFlags("density mix", "", `Schools of realistic sizes, from cold, with the memory budget off and on: registers
--schools schools (one of 100,000 students, 5% of 20,000, the rest 200-3,000) and fills them,
then, for each configuration (budget off: no memory limit, no running cap, as before issue 20;
budget on: --memory per app and --max-running), wakes --busy of them (the big ones among them)
under light load for --duration and reports latency and memory per size class, then wakes every
school at once and reports how the requests were answered (200, or 503 with Retry-After) and
the peak memory of the whole system and of the machine.`)
	var (
		mo         mongoOptions
		schools    = fs.Int("schools", 60, "schools registered and filled")
		busy       = fs.Int("busy", 20, "schools woken and kept under light load (the big ones first)")
		maxStarts  = fs.Int("max-starts", supervisor.DefaultMaxStarts, "the supervisor's start cap (apps starting at once)")
		interval   = fs.Duration("interval", time.Second, "time between two requests of one busy school")
		duration   = fs.Duration("duration", 20*time.Second, "length of the light load")
		arrive     = fs.Duration("arrive", 0, "busy schools arrive (send their first request) at random moments within this time, as a school day starts (0: all in the same instant, a wake storm); each then gets --duration of load")
		memory     = fs.String("memory", "512MiB", "budget on: memory limit per app")
		maxRunning = fs.Int("max-running", 0, "budget on: running cap (0: as campus dev's default, from the machine's memory and --memory)")
		hold       = fs.Duration("hold-timeout", 5*time.Second, "the proxy's hold timeout")
		seed       = fs.Uint64("seed", 20, "seed of the school sizes")
		abba       = fs.Bool("abba", false, "run off, on, on, off (four columns) so that load drifting during the run favours neither")
		before     = fs.Bool("before", true, "also run with the budget off (as before issue 20); at hundreds of schools that wakes them all without a cap: mind the machine")
		scale      = fs.Float64("scale", 1, "multiply every school's size by this (a quick run; the report says so)")
		data       = fs.String("data", "", "keep the filled schools in this folder and reuse them in the next run of the same --schools, --seed and --scale (the fill takes minutes; a run of another tree on the same data is side by side with less waiting)")
		profile    = fs.String("cpuprofile", "", "write a CPU profile of this process (supervisor, proxy, registry, database, clients) during the first 20 s of the last configuration's busy phase to this file")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *busy < 1 || *schools < *busy {
		return usageErr("want 1 <= --busy <= --schools")
	}
	limit, err := registry.MemoryBytes(*memory)
	if err != nil {
		return usageErr("--memory: %v", err)
	}
	capN := *maxRunning
	if capN == 0 {
		capN = supervisor.DefaultMaxRunning(limit)
	}
	logger := benchScaleLogger(e)

	if *scale <= 0 || *scale > 1 {
		return usageErr("--scale must be in (0, 1]")
	}
	dir, mark := *data, fmt.Sprintf("schools %d seed %d scale %g\n", *schools, *seed, *scale)
	reuse := false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "campus-bench-mix-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		switch b, err := os.ReadFile(filepath.Join(dir, "filled")); {
		case err == nil && string(b) == mark:
			reuse = true
		case err == nil:
			return usageErr("--data %s holds another mix (%s)", dir, strings.TrimSpace(string(b)))
		case !errors.Is(err, os.ErrNotExist):
			return err
		default:
			entries, _ := os.ReadDir(dir)
			if len(entries) > 0 {
				return usageErr("--data %s is neither empty nor a filled mix", dir)
			}
		}
	}
	uri, backend, stopDB, err := mo.benchDatabase(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer stopDB()
	reg, err := embedded.Open(filepath.Join(dir, "registry"))
	if err != nil {
		return fmt.Errorf("open registry: %w", err)
	}
	defer reg.Close()

	sizes := mixSizes(*schools, rand.New(rand.NewPCG(*seed, *seed)))
	for i := range sizes {
		sizes[i] = max(1, int(float64(sizes[i])**scale))
	}
	s := &scaleSystem{reg: reg}
	total := 0
	fillStart := time.Now()
	if reuse {
		fmt.Fprintf(e.stderr, "reusing the %d schools filled in %s...\n", *schools, dir)
		all, err := reg.Tenants(ctx)
		if err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		byName := map[string]registry.Tenant{}
		for _, t := range all {
			byName[t.Name] = t
		}
		for i, n := range sizes {
			t, ok := byName[fmt.Sprintf("mix-%03d-%d", i, n)]
			if !ok {
				return fmt.Errorf("--data %s: school %d (%d students) is missing", dir, i, n)
			}
			s.tenants = append(s.tenants, t)
			total += n
		}
	} else {
		fmt.Fprintf(e.stderr, "creating and filling %d schools...\n", *schools)
		for i, n := range sizes {
			name := fmt.Sprintf("mix-%03d-%d", i, n)
			t, err := registry.NewTenant(name, []string{name + ".bench.localhost"}, "")
			if err != nil {
				return err
			}
			if t, err = reg.CreateTenant(ctx, t); err != nil {
				return fmt.Errorf("create tenant %s: %w", name, err)
			}
			if err := tenancy.MigrateDatabase(ctx, uri, t, logger); err != nil {
				return err
			}
			if err := fillSchool(ctx, uri, t, 0, n); err != nil {
				return err
			}
			s.tenants = append(s.tenants, t)
			total += n
		}
		if *data != "" {
			if err := os.WriteFile(filepath.Join(dir, "filled"), []byte(mark), 0o644); err != nil {
				return err
			}
		}
	}
	fill := time.Since(fillStart)
	if !reuse {
		fmt.Fprintf(e.stderr, "filled %d students in %s\n", total, fill.Round(time.Second))
	}

	type config struct {
		name       string
		memory     int64
		maxRunning int
	}
	off, on := config{"budget off (before)", 0, 0}, config{fmt.Sprintf("budget on (%s, max %d running)", *memory, capN), limit, capN}
	configs := []config{off, on}
	switch {
	case !*before:
		configs = []config{on}
	case *abba:
		// off, on, on, off: a machine whose load drifts during the run
		// favours neither.
		configs = []config{off, on, on, off}
	}
	var results []mixResult
	for _, c := range configs {
		fmt.Fprintf(e.stderr, "%s...\n", c.name)
		r, err := s.runMix(ctx, e, uri, scaleSystemConfig{idleTimeout: time.Hour, maxStarts: *maxStarts,
			holdTimeout: *hold, logger: logger, progress: e.stderr, memory: c.memory, maxRunning: c.maxRunning},
			sizes, *busy, *interval, *arrive, *duration, *profile)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r.name = c.name
		results = append(results, r)
	}

	load, _ := os.ReadFile("/proc/loadavg")
	filled := "filled in " + fill.Round(time.Second).String()
	if reuse {
		filled = "filled by an earlier run (--data)"
	}
	fmt.Fprintf(e.stdout, "campus-bench density mix: %d schools (%s students: %s), %s, %s, GOMAXPROCS=%d, machine memory %s, load %s\n",
		*schools, formatInt(total), mixSummary(sizes), backend, filled, runtimeProcs(), mib(supervisor.MachineMemory()),
		strings.Join(strings.Fields(string(load))[:3], " "))
	if *scale != 1 {
		fmt.Fprintf(e.stdout, "SCALED DOWN: every school at %g of its size (the classes keep their names)\n", *scale)
	}
	arrival := "all in the same instant (a wake storm)"
	if *arrive > 0 {
		arrival = "arriving at random moments within " + arrive.String()
	}
	fmt.Fprintf(e.stdout, "busy: %d schools (the biggest first), %s, from cold, then one GET / per %s each for %s; then every school woken at once (hold timeout %s)\n\n",
		*busy, arrival, *interval, *duration, *hold)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "measure\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t", r.name)
	}
	fmt.Fprintln(w)
	row := func(label string, f func(r mixResult) string) {
		fmt.Fprintf(w, "%s\t", label)
		for _, r := range results {
			fmt.Fprintf(w, "%s\t", f(r))
		}
		fmt.Fprintln(w)
	}
	for _, class := range mixClasses {
		row("busy "+class+": first GET (worst; answered 200 of sent)", func(r mixResult) string {
			if len(r.first[class]) == 0 {
				return fmt.Sprintf("- (0 of %d)", r.firstSent[class])
			}
			return fmt.Sprintf("%s (%d of %d)", msf(r.first[class].max()), len(r.first[class]), r.firstSent[class])
		})
		row("busy "+class+": p50 / p99 after", func(r mixResult) string {
			return msf(r.lat[class].pct(50)) + " / " + msf(r.lat[class].pct(99))
		})
		row("  of which to a ready school: p50 / p99 (answers)", func(r mixResult) string {
			return fmt.Sprintf("%s / %s (%d)", msf(r.ready[class].pct(50)), msf(r.ready[class].pct(99)), len(r.ready[class]))
		})
		row("  of which held while it started: p50 / max (answers)", func(r mixResult) string {
			return fmt.Sprintf("%s / %s (%d)", msf(r.held[class].pct(50)), msf(r.held[class].max()), len(r.held[class]))
		})
		row("  ready, first 30 s / after: p99", func(r mixResult) string {
			return msf(r.readyEarly[class].pct(99)) + " / " + msf(r.readyLate[class].pct(99))
		})
		row("busy "+class+": app RSS (mean)", func(r mixResult) string { return mib(r.rss[class]) })
	}
	row("busy: requests 200 / other", func(r mixResult) string { return fmt.Sprintf("%d / %d", r.busyOK, r.busyOther) })
	row("busy: whole system RSS / PSS", func(r mixResult) string { return mib(r.busyMem.rss) + " / " + mib(r.busyMem.pss) })
	row("wake all: 200 / 503 Retry-After / other", func(r mixResult) string {
		return fmt.Sprintf("%d / %d / %d", r.all200, r.all503, r.allOther)
	})
	row("wake all: time to the last answer", func(r mixResult) string { return msf(r.allTook) })
	row("wake all: apps running (peak)", func(r mixResult) string { return strconv.Itoa(r.peakApps) })
	row("wake all: whole system RSS (peak)", func(r mixResult) string { return mib(r.peakRSS) })
	row("wake all: machine used (peak, MemTotal-MemAvailable)", func(r mixResult) string { return mib(r.peakMachine) })
	row("app start → ready: mean (starts)", func(r mixResult) string {
		if r.starts == 0 {
			return "-"
		}
		return fmt.Sprintf("%s (%d)", msf(time.Duration(r.startSum/float64(r.starts)*float64(time.Second))), r.starts)
	})
	row("evictions / memory kills", func(r mixResult) string { return fmt.Sprintf("%.0f / %.0f", r.evictions, r.kills) })
	return w.Flush()
}

// mixClasses name the size classes of the mix.
var mixClasses = []string{"200-3,000", "20,000", "100,000"}

// mixClass is the class of the i-th school (mixSizes's order).
func mixClass(i, schools int) string {
	switch {
	case i == 0:
		return mixClasses[2]
	case i <= max(1, schools/20):
		return mixClasses[1]
	}
	return mixClasses[0]
}

// mixSizes: one school of 100,000, 5% (at least one) of 20,000, the rest
// uniform in 200-3,000; the biggest first.
func mixSizes(n int, r *rand.Rand) []int {
	out := make([]int, n)
	mid := max(1, n/20)
	for i := range out {
		switch {
		case i == 0:
			out[i] = 100_000
		case i <= mid:
			out[i] = 20_000
		default:
			out[i] = 200 + r.IntN(2801)
		}
	}
	return out
}

func mixSummary(sizes []int) string {
	count := map[string]int{}
	for i := range sizes {
		count[mixClass(i, len(sizes))]++
	}
	var parts []string
	for _, c := range mixClasses {
		parts = append(parts, fmt.Sprintf("%d of %s", count[c], c))
	}
	return strings.Join(parts, ", ")
}

func formatInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

type mixResult struct {
	name       string
	first, lat map[string]durations
	firstSent  map[string]int
	// The answers after the first, split: to a school that had answered
	// 200 before (ready; and sent in the first 30 s of the load or
	// later), or to one that had not (held by the proxy while it started,
	// after a first GET answered 503 at the hold timeout).
	ready, held, readyEarly, readyLate map[string]durations
	rss                                map[string]int64
	busyOK, busyOther                  int
	busyMem                            systemMem
	all200, all503, allOther           int
	allTook                            time.Duration
	peakApps                           int
	peakRSS, peakMachine               int64
	evictions, kills                   float64
	startSum                           float64 // seconds, start → ready of every app
	starts                             uint64
}

// runMix serves the schools with cfg and runs the busy and wake-all
// phases; every app is stopped when it returns.
func (s *scaleSystem) runMix(ctx context.Context, e *env, uri string, cfg scaleSystemConfig, sizes []int,
	busy int, interval, arrive, duration time.Duration, profile string) (mixResult, error) {
	r := mixResult{first: map[string]durations{}, lat: map[string]durations{}, rss: map[string]int64{},
		firstSent: map[string]int{}, ready: map[string]durations{}, held: map[string]durations{},
		readyEarly: map[string]durations{}, readyLate: map[string]durations{}}
	stop, err := s.serve(ctx, uri, cfg)
	if err != nil {
		return r, err
	}
	defer stop()
	if err := s.waitStates(ctx, s.tenants, time.Minute, supervisor.StateIdle); err != nil {
		return r, err
	}
	class := map[string]string{}
	for i, t := range s.tenants {
		class[t.Name] = mixClass(i, len(sizes))
	}

	// Busy: the first --busy schools (the biggest), woken from cold.
	hot := s.tenants[:busy]
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	answered := map[string]bool{} // the school has answered 200
	loadStart := time.Now()
	stopProfile, err := startCPUProfile(profile)
	if err != nil {
		return r, err
	}
	profiled := time.AfterFunc(20*time.Second, func() { _ = stopProfile() })
	defer func() {
		if profiled.Stop() {
			_ = stopProfile()
		}
	}()
	record := func(t registry.Tenant, d time.Duration, code int, err error, first bool) {
		mu.Lock()
		defer mu.Unlock()
		c := class[t.Name]
		if first {
			r.firstSent[c]++
		}
		if err != nil || code != http.StatusOK {
			r.busyOther++
			return
		}
		r.busyOK++
		switch {
		case first:
			r.first[c] = append(r.first[c], d)
		case !answered[t.Name]:
			r.lat[c] = append(r.lat[c], d)
			r.held[c] = append(r.held[c], d)
		default:
			r.lat[c] = append(r.lat[c], d)
			r.ready[c] = append(r.ready[c], d)
			if time.Since(loadStart)-d < 30*time.Second {
				r.readyEarly[c] = append(r.readyEarly[c], d)
			} else {
				r.readyLate[c] = append(r.readyLate[c], d)
			}
		}
		answered[t.Name] = true
	}
	s.lightLoad(ctx, hot, "/", interval, arrive, duration, true, record)
	r.busyMem = memory(s.pids())
	count := map[string]int64{}
	for _, st := range s.sup.Status() {
		if st.PID != 0 {
			c := class[st.Tenant]
			r.rss[c] += smapsRollup(st.PID).rss
			count[c]++
		}
	}
	for c, n := range count {
		r.rss[c] /= n
	}

	// Wake all: one GET / per school, all at once; memory sampled meanwhile.
	fmt.Fprintf(e.stderr, "  waking all %d schools at once...\n", len(s.tenants))
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			pids := s.pids()
			m := memory(pids)
			mu.Lock()
			r.peakApps = max(r.peakApps, len(pids)-1)
			r.peakRSS = max(r.peakRSS, m.rss)
			r.peakMachine = max(r.peakMachine, machineUsed())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	for _, t := range s.tenants {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.proxyAddr+"/", nil)
			if err != nil {
				return
			}
			req.Host = t.PrimaryHost
			resp, err := s.client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				r.allOther++
				return
			case resp.StatusCode == http.StatusOK:
				r.all200++
			case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				r.all503++
			default:
				r.allOther++
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	r.allTook = time.Since(start)
	time.Sleep(time.Second) // starts still under way count towards the peak
	close(done)
	sampler.Wait()
	r.startSum, r.starts = histogram(s, supervisor.MetricStartSeconds)
	r.evictions = counterSum(s, supervisor.MetricEvictionsTotal)
	r.kills = counterSum(s, supervisor.MetricMemoryKillsTotal)
	return r, nil
}

// machineUsed is MemTotal - MemAvailable: the whole machine, other work
// included.
func machineUsed() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total - avail
}
