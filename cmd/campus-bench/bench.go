package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "routing":
			return runBenchRouting(ctx, e, args[1:])
		case "school": // cmd_bench_school.go
			return runBenchSchool(ctx, e, args[1:])
		case "migrate": // cmd_bench_backup.go
			return runBenchMigrate(ctx, e, args[1:])
		case "backup": // cmd_bench_backup.go
			return runBenchBackup(ctx, e, args[1:])
		case "coldstart": // scale to zero: cmd_bench_coldstart.go
			return runBenchColdstart(ctx, e, args[1:])
		case "stampede": // cmd_bench_coldstart.go
			return runBenchStampede(ctx, e, args[1:])
		case "density": // cmd_bench_density.go; "density mix": bench_density_mix.go
			if len(args) > 1 && args[1] == "mix" {
				return runBenchDensityMix(ctx, e, args[2:])
			}
			return runBenchDensity(ctx, e, args[1:])
		case "abuse": // issue 25: bench_abuse.go
			return runBenchAbuse(ctx, e, args[1:])
		case "abuse-flood": // the flooder process of abuse: bench_abuse_flood.go
			return runBenchAbuseFlood(ctx, e, args[1:])
		case "control": // issue 26: bench_control.go
			return runBenchControl(ctx, e, args[1:])
		case "diskfull": // issue 23: bench_diskfull.go
			return runBenchDiskFull(ctx, e, args[1:])
		case "atomic": // issue 22: bench_atomic.go
			return runBenchAtomic(ctx, e, args[1:])
		case "sheets": // issue 27, spreadsheets: bench_sheets.go
			return runBenchSheets(ctx, e, args[1:])
		case "lists": // issue 27, lists: bench_lists.go
			return runBenchLists(ctx, e, args[1:])
		case "history": // bench_history.go
			return runBenchHistory(ctx, e, args[1:])
		case "student-history": // issue 27 (6): bench_studenthistory.go
			return runBenchStudentHistory(ctx, e, args[1:])
		}
	}
	if len(args) > 0 && args[0] == "proxy" {
		args = args[1:]
	}
	fs := newFlags("bench [proxy]", "", `Measure requests per second and latency of the same requests sent directly to an app
instance and through the proxy, side by side in one run: rounds alternate between the two so
that the shared machine's noise falls on both. Everything runs on loopback in this process:
the embedded database (or MONGODB_URI), one app, one proxy, the load generator.
'campus bench routing' measures route propagation and table rebuilds instead; 'campus bench school'
the pages of a big school; 'campus bench migrate' and 'campus bench backup' the fleet migration
and one school's backup and restore.`)
	var (
		mo          mongoOptions
		duration    = fs.Duration("duration", 3*time.Second, "length of each round")
		rounds      = fs.Int("rounds", 3, "rounds per target (alternating direct and proxied)")
		concurrency = fs.Int("concurrency", 16, "concurrent closed-loop clients")
		students    = fs.Int("students", 50, "students in the benchmark tenant (the public page shows up to 50)")
		compare     = fs.Bool("compare", false, "instead: GET /healthz direct, through a `campus proxy` process, and through nginx and HAProxy when installed (each its own process), side by side")
		client      = fs.String("client", "auto", "load generator of --compare: wrk, loadgen (in this process), or auto (wrk when installed)")
		baseline    = fs.String("baseline", "", "with --compare: also run the proxy of this other campus binary (e.g. built from an older commit), for before/after in one run")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	// Rounds end by cancelling requests in flight, which the app, the proxy
	// and the database report as warnings: only errors are worth showing.
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "campus-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	uri, _, stopDB, err := mo.benchDatabase(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer stopDB()
	t, err := registry.NewTenant("bench"+fmt.Sprint(time.Now().UnixNano()%1e6), []string{"bench.school.localhost"}, "Bench School")
	if err != nil {
		return err
	}
	st, err := tenancy.OpenStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer func() {
		st.Drop(context.WithoutCancel(ctx))
		st.Close(context.WithoutCancel(ctx))
	}()
	if _, _, err := st.Migrate(ctx); err != nil {
		return err
	}
	for i := range *students {
		if _, err := st.CreateStudent(ctx, store.StudentInput{RegistrationNo: fmt.Sprintf("B/%05d", i), FirstName: "First", SecondName: "Second"}); err != nil {
			return fmt.Errorf("seed students: %w", err)
		}
	}

	// One app instance on loopback.
	appHandler, err := app.NewServer(app.Config{Tenant: t, Store: st, Logger: logger, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go httpserve.Serve(ctx, httpserve.New(appHandler, logger), appLn)

	if *compare {
		c := *client
		if c == "auto" {
			c = "loadgen"
			if _, err := exec.LookPath("wrk"); err == nil {
				c = "wrk"
			}
		}
		if c != "wrk" && c != "loadgen" {
			return usageErr("--client %q: want wrk, loadgen or auto", *client)
		}
		return runCompare(ctx, e, compareConfig{dir: dir, tenant: t, appAddr: appLn.Addr().String(), path: "/healthz",
			client: c, duration: *duration, rounds: *rounds, concurrency: *concurrency, logger: logger, baseline: *baseline})
	}

	// One proxy routing the tenant to it.
	p, err := proxy.New(proxy.Config{Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	p.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{t},
		Instances: []registry.Instance{{ID: "bench-1", Tenant: t.Name, Addr: appLn.Addr().String(), Healthy: true}}})
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go httpserve.Serve(ctx, httpserve.New(p, logger), proxyLn)

	fmt.Fprintf(e.stdout, "campus bench: %d rounds of %s per target, %d concurrent clients, GOMAXPROCS=%d\n\n",
		*rounds, *duration, *concurrency, runtimeProcs())
	type target struct{ name, addr string }
	targets := []target{{"direct", appLn.Addr().String()}, {"proxied", proxyLn.Addr().String()}}
	for _, path := range []struct{ path, what string }{
		{"/", "public page (50 students from the database)"},
		{"/healthz", "health check (no database: the proxy's own cost shows)"},
	} {
		sums := make([]loadgen.Result, len(targets))
		for r := 0; r < *rounds; r++ {
			for i, tg := range targets {
				res, err := loadgen.Run(ctx, loadgen.Config{
					Target: "http://" + tg.addr + path.path, Host: t.PrimaryHost,
					Concurrency: *concurrency, Duration: *duration,
				})
				if err != nil {
					return fmt.Errorf("bench %s %s: %w", tg.name, path.path, err)
				}
				sums[i] = merge(sums[i], res)
			}
		}
		rows := make([]loadgen.Row, len(targets))
		for i, tg := range targets {
			rows[i] = loadgen.Row{Name: tg.name + " " + path.path, Result: sums[i]}
		}
		fmt.Fprintf(e.stdout, "GET %s — %s\n", path.path, path.what)
		if err := loadgen.WriteTable(e.stdout, rows); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "proxied/direct: throughput %.2f, p50 latency %.2f, p99 latency %.2f\n\n",
			sums[1].RPS/sums[0].RPS, ratio(sums[1].P50, sums[0].P50), ratio(sums[1].P99, sums[0].P99))
	}
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// merge adds up rounds: counts and time sum, rates are recomputed, and
// latency percentiles are the mean of the rounds' percentiles.
func merge(a, b loadgen.Result) loadgen.Result {
	if a.Requests == 0 {
		return b
	}
	n := a.Requests + b.Requests
	wa, wb := float64(a.Requests)/float64(n), float64(b.Requests)/float64(n)
	avg := func(x, y time.Duration) time.Duration { return time.Duration(wa*float64(x) + wb*float64(y)) }
	out := loadgen.Result{
		Requests: n,
		Errors:   a.Errors + b.Errors,
		Non2xx:   a.Non2xx + b.Non2xx,
		Elapsed:  a.Elapsed + b.Elapsed,
		P50:      avg(a.P50, b.P50),
		P90:      avg(a.P90, b.P90),
		P99:      avg(a.P99, b.P99),
		Max:      max(a.Max, b.Max),
	}
	out.RPS = float64(n) / out.Elapsed.Seconds()
	return out
}

// benchDatabase is the database a bench runs on: MONGODB_URI (or
// --mongodb-uri) when given, else an embedded FerretDB under dir. stop
// stops what it started (nothing for an external database).
func (o *mongoOptions) benchDatabase(ctx context.Context, dir string, logger *slog.Logger) (uri, backend string, stop func(), err error) {
	if o.uri != "" || o.uriFile != "" {
		uri, err = o.resolve()
		return uri, "MongoDB (MONGODB_URI)", func() {}, err
	}
	srv, err := devmongo.Start(ctx, devmongo.Config{Dir: filepath.Join(dir, "mongo"), Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return "", "", nil, fmt.Errorf("start embedded database: %w", err)
	}
	return srv.URI(), "embedded FerretDB v1.24.2 (SQLite)", func() { srv.Close() }, nil
}
