package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// coldSizesConfig is `campus-bench coldstart --sizes` (issue 20): schools
// of real sizes woken from zero, and a big import into a running one.
type coldSizesConfig struct {
	sizes      []int
	wakes      int
	before     string   // a second campus binary measured beside, in alternating wakes ("": none)
	importRows int      // rows imported into the biggest school while it is read (0: no import phase)
	previews   int      // people previewing an import of importRows rows at once (bench_coldpreview.go)
	importVia  []string // "cli", "browser": the imports while read, in turn
	maxStarts  int
	mo         mongoOptions
}

// parseSizes reads "0,10000,100000".
func parseSizes(v string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > store.MaxImportRows {
			return nil, usageErr("--sizes: %q is not a number of students 0-%d", f, store.MaxImportRows)
		}
		out = append(out, n)
	}
	return out, nil
}

// coldClass is one school (one size) of one system, and what its wakes measured.
type coldClass struct {
	size                    int
	t                       registry.Tenant
	ready, first, search    durations
	rss                     []int64
	rssUse, anonUse         []int64 // after inUseFor of use (bench_coldrss.go)
	memstats                string  // the app's Go memory then, at the last wake
	firstFailed, searchFail int
}

type coldSystem struct {
	name    string
	sys     *scaleSystem
	classes []*coldClass
}

func runColdSizes(ctx context.Context, e *env, cfg coldSizesConfig) error {
	bins := []struct{ name, bin string }{{"this tree", ""}}
	if cfg.before != "" {
		bins = append(bins, struct{ name, bin string }{"before", cfg.before})
	}
	var systems []*coldSystem
	for _, b := range bins {
		s, err := startScaleSystem(ctx, scaleSystemConfig{tenants: len(cfg.sizes), idleTimeout: registry.MinIdleTimeout, health: 200 * time.Millisecond,
			maxStarts: cfg.maxStarts, holdTimeout: time.Minute, migrate: -1, mo: cfg.mo, logger: benchScaleLogger(e), progress: e.stderr, bin: b.bin})
		if err != nil {
			return err
		}
		defer s.close()
		cs := &coldSystem{name: b.name, sys: s}
		for i, n := range cfg.sizes {
			t := s.tenants[i]
			fmt.Fprintf(e.stderr, "%s: filling %s with %d students...\n", b.name, t.Name, n)
			if err := fillSchool(ctx, s.uri, t, 0, n); err != nil {
				return err
			}
			cs.classes = append(cs.classes, &coldClass{size: n, t: t})
		}
		systems = append(systems, cs)
	}

	if len(systems) > 1 {
		// The schools were filled by this tree's store, which saved their
		// read model in its own format: another binary refuses that one and
		// loads the collection at its first wake. One wake of each school,
		// not counted, lets each binary save its own first.
		fmt.Fprintf(e.stderr, "one wake per school, not counted (each binary saves its read model)...\n")
		for _, cs := range systems {
			for _, c := range cs.classes {
				if err := cs.wake(ctx, &coldClass{size: c.size, t: c.t}, 0); err != nil {
					return err
				}
			}
		}
	}
	// The apps' binaries as a machine in service has them: read back from
	// disk by the first wake, not left in the page cache whole by the
	// build (every page cached makes each fault map its neighbours too,
	// about 9 MB more RSS per app).
	for _, cs := range systems {
		if err := evictFromPageCache(cs.sys.bin); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "measuring %d wakes per school...\n", cfg.wakes)
	for w := range cfg.wakes {
		for _, c := range systems[0].classes { // each size, each system in turn: the machine's noise falls on both
			for _, cs := range systems {
				class := cs.classes[slices.IndexFunc(cs.classes, func(x *coldClass) bool { return x.size == c.size })]
				if err := cs.wake(ctx, class, w); err != nil {
					return err
				}
			}
		}
	}

	fmt.Fprintf(e.stdout, "campus-bench coldstart --sizes: %d wakes per school, from zero (no process; the database warm), through the proxy, GOMAXPROCS=%d\n\n",
		cfg.wakes, runtimeProcs())
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "apps\tstudents\tstart→ready p50\tmax\tfirst GET / p50\tmax\tnot 200\tfirst search p50\tmax\tnot 200\tRSS after (max)\tRSS in use p50\tmax\tanonymous max\t")
	for _, c := range systems[0].classes {
		for _, cs := range systems {
			k := cs.classes[slices.IndexFunc(cs.classes, func(x *coldClass) bool { return x.size == c.size })]
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%.0f MB\t%.1f MB\t%.1f MB\t%.1f MB\t\n", cs.name, k.size,
				msf(k.ready.pct(50)), msf(k.ready.max()), msf(k.first.pct(50)), msf(k.first.max()), k.firstFailed,
				msf(k.search.pct(50)), msf(k.search.max()), k.searchFail, float64(slices.Max(append(k.rss, 0)))/1e6,
				float64(median(k.rssUse))/1e6, float64(slices.Max(append(k.rssUse, 0)))/1e6, float64(slices.Max(append(k.anonUse, 0)))/1e6)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, c := range systems[0].classes {
		for _, cs := range systems {
			k := cs.classes[slices.IndexFunc(cs.classes, func(x *coldClass) bool { return x.size == c.size })]
			var wakes []string
			for i := range k.rssUse {
				wakes = append(wakes, fmt.Sprintf("%.1f/%.1f", float64(k.rssUse[i])/1e6, float64(k.anonUse[i])/1e6))
			}
			fmt.Fprintf(e.stdout, "%s, %d students, RSS/anonymous in use by wake (MB): %s\n", cs.name, k.size, strings.Join(wakes, " "))
			fmt.Fprintf(e.stdout, "%s, %d students, in use (last wake): %s\n", cs.name, k.size, k.memstats)
		}
	}
	fmt.Fprintf(e.stdout, "goals (issue 20): start→ready ≤ 150 ms at any size; a woken 100,000-student school's first GET / and first search ≤ 300 ms, no 503; RSS ≤ 60 MB (in use: after %s of pages and searches)\n", inUseFor)

	if cfg.importRows > 0 && cfg.previews > 0 {
		for _, cs := range systems {
			if err := cs.previewsWhileIdle(ctx, e, cfg.previews, cfg.importRows); err != nil {
				return err
			}
		}
	}
	if cfg.importRows > 0 {
		for _, via := range cfg.importVia {
			for _, cs := range systems {
				if err := cs.importWhileRead(ctx, e, cfg.importRows, via); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// wake waits until the school has no process, then measures its first
// page, its first search, its start → ready and its RSS.
func (cs *coldSystem) wake(ctx context.Context, c *coldClass, n int) error {
	s := cs.sys
	if err := s.waitStates(ctx, []registry.Tenant{c.t}, 2*time.Minute, supervisor.StateIdle); err != nil {
		return err
	}
	sum0, n0 := histogram(s, supervisor.MetricStartSeconds)
	d, code, err := s.get(ctx, c.t, "/")
	c.first = append(c.first, d)
	if err != nil || code != http.StatusOK {
		c.firstFailed++
	}
	if sum1, n1 := histogram(s, supervisor.MetricStartSeconds); n1 > n0 {
		c.ready = append(c.ready, time.Duration((sum1-sum0)/float64(n1-n0)*float64(time.Second)))
	}
	// A different search at each wake (a new process remembers none).
	q := url.QueryEscape(benchFirst[n%len(benchFirst)] + " " + benchSecond[n%len(benchSecond)])
	d, code, err = s.get(ctx, c.t, "/?q="+q)
	c.search = append(c.search, d)
	if err != nil || code != http.StatusOK {
		c.searchFail++
	}
	for _, st := range s.sup.Status() {
		if st.Tenant == c.t.Name && st.PID != 0 {
			c.rss = append(c.rss, rssOf(st.PID))
		}
	}
	cs.useAndMeasure(ctx, c, n)
	return nil
}

// fillSchool imports n students numbered from first into t's database,
// as `campus manage T students import` would (its own Store).
func fillSchool(ctx context.Context, uri string, t registry.Tenant, first, n int) error {
	if n == 0 {
		return nil
	}
	st, err := tenancy.OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	rows := benchRows(first + n)[first:]
	if _, errs, err := st.ImportStudents(ctx, rows, nil); err != nil || len(errs) > 0 {
		return fmt.Errorf("fill %s: %v %v", t.Name, errs, err)
	}
	return nil
}

// importWhileRead reads the biggest school with two closed-loop clients
// (its public page and varied searches) while another process imports
// rows into it, and for 10 s after, and prints the latency of each phase.
func (cs *coldSystem) importWhileRead(ctx context.Context, e *env, rows int, via string) error {
	c := cs.classes[0]
	for _, k := range cs.classes {
		if k.size > c.size {
			c = k
		}
	}
	s := cs.sys
	if err := waitOK(ctx, "http://"+s.proxyAddr+"/", c.t.PrimaryHost, time.Minute); err != nil {
		return err
	}
	type sample struct {
		at   time.Time
		d    time.Duration
		code int
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for client := range 2 {
		wg.Go(func() {
			for i := 0; rctx.Err() == nil; i++ {
				path := "/"
				if i%2 == 1 {
					path = "/?q=" + url.QueryEscape(benchFirst[(i+client)%len(benchFirst)]+" "+benchSecond[i%len(benchSecond)])
				}
				d, code, err := s.get(rctx, c.t, path)
				if rctx.Err() != nil {
					return
				}
				if err != nil {
					code = 0
				}
				mu.Lock()
				samples = append(samples, sample{time.Now(), d, code})
				mu.Unlock()
			}
		})
	}
	time.Sleep(2 * time.Second) // the school read before the import, as a baseline
	start := time.Now()
	how := "another process, as `campus manage T students import`"
	var err error
	if via == "browser" {
		how = "through the school's import page: preview, then confirmation, applied by its app"
		var outcome string
		outcome, err = cs.browserImport(ctx, c, rows)
		how += "; " + outcome
	} else {
		err = fillSchool(ctx, s.uri, c.t, c.size, rows)
	}
	c.size += rows // what the school holds now (another import adds the next rows)
	end := time.Now()
	if err == nil {
		time.Sleep(10 * time.Second)
	}
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s: a %d-row import (%s) into the %d-student school while two clients read it (its public page and varied searches, alternately); the import took %s\n",
		cs.name, rows, how, c.size-rows, end.Sub(start).Round(time.Millisecond))
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\trequests\tp50\tp99\tmax\tnot 200\t")
	for _, ph := range []struct {
		name     string
		from, to time.Time
	}{{"2 s before", start.Add(-2 * time.Second), start}, {"during the import", start, end}, {"10 s after", end, end.Add(10 * time.Second)}} {
		var ds durations
		bad := 0
		for _, x := range samples {
			if x.at.Before(ph.from) || !x.at.Before(ph.to) {
				continue
			}
			ds = append(ds, x.d)
			if x.code != http.StatusOK {
				bad++
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t\n", ph.name, len(ds), msf(ds.pct(50)), msf(ds.pct(99)), msf(ds.max()), bad)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "goal (issue 20): during and right after the import, p99 ≤ 300 ms and no 503")
	return nil
}
