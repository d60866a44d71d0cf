package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/tenancy"
)

// Scale to zero (issue 12): the system the `campus bench coldstart`,
// `stampede` and `density` commands measure: what `campus dev` runs (the
// embedded database, an embedded registry, the supervisor with real
// `campus app` children, the proxy), all on loopback, in a temporary data
// directory, with --tenants tenants that start idle.

type scaleSystemConfig struct {
	tenants     int
	idleTimeout time.Duration
	maxStarts   int
	holdTimeout time.Duration
	health      time.Duration // the supervisor's HealthInterval (0: its default)
	pool        int           // pre-started processes (supervisor.PoolConfig.Size)
	migrate     int           // tenants whose database is created first, as tenant create does (-1: all)
	mo          mongoOptions
	logger      *slog.Logger
	progress    io.Writer
	bin         string // the campus binary of the apps (empty: campusBinary)
	// The memory budget (issue 20): supervisor.Config's Memory and
	// MaxRunning (0: none).
	memory     int64
	maxRunning int
}

type scaleSystem struct {
	reg       *embedded.Registry
	sup       *supervisor.Supervisor
	proxy     *proxy.Proxy
	proxyAddr string
	tenants   []registry.Tenant
	metrics   *prometheus.Registry
	client    *http.Client
	poolSize  int
	uri       string // the database server
	bin       string // the campus binary of the apps
	close     func()
}

func startScaleSystem(ctx context.Context, cfg scaleSystemConfig) (_ *scaleSystem, err error) {
	var cleanup []func()
	closeAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	dir, err := os.MkdirTemp("", "campus-bench-scale-")
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { os.RemoveAll(dir) })

	uri, _, stopDB, err := cfg.mo.benchDatabase(ctx, dir, cfg.logger)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, stopDB)
	reg, err := embedded.Open(filepath.Join(dir, "registry"))
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	cleanup = append(cleanup, func() { reg.Close() })

	s := &scaleSystem{reg: reg, metrics: prometheus.NewRegistry(), poolSize: cfg.pool, uri: uri}
	fmt.Fprintf(cfg.progress, "registering %d tenants...\n", cfg.tenants)
	run := fmt.Sprint(time.Now().UnixNano() % 1e6)
	for i := range cfg.tenants {
		name := fmt.Sprintf("b%s-%05d", run, i)
		t, err := registry.NewTenant(name, []string{name + ".bench.localhost"}, "")
		if err != nil {
			return nil, err
		}
		if t, err = reg.CreateTenant(ctx, t); err != nil {
			return nil, fmt.Errorf("create tenant %s: %w", name, err)
		}
		s.tenants = append(s.tenants, t)
	}
	// `campus tenant create` migrates a tenant's database when it creates
	// it: a school that wakes at 8 a.m. has one already.
	n := cfg.migrate
	if n < 0 || n > len(s.tenants) {
		n = len(s.tenants)
	}
	fmt.Fprintf(cfg.progress, "creating %d tenant databases...\n", n)
	for _, t := range s.tenants[:n] {
		if err := tenancy.MigrateDatabase(ctx, uri, t, cfg.logger); err != nil {
			return nil, err
		}
	}

	stop, err := s.serve(ctx, uri, cfg)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, stop)
	s.close = closeAll

	// Every tenant idle before anything is measured.
	if err := s.waitStates(ctx, s.tenants, time.Minute, supervisor.StateIdle); err != nil {
		return nil, err
	}
	return s, nil
}

// serve starts a supervisor (tenants start idle), the proxy and a client
// over s.reg, with apps on the database uri; stop stops them (and every
// app).
func (s *scaleSystem) serve(ctx context.Context, uri string, cfg scaleSystemConfig) (stop func(), err error) {
	var cleanup []func()
	stop = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	self := cfg.bin
	if self == "" {
		if self, err = campusBinary(); err != nil {
			return nil, err
		}
	}
	s.bin = self
	reg := s.reg
	s.metrics = prometheus.NewRegistry() // one per supervisor and proxy
	act := &supervisor.LateActivity{}
	s.sup, err = supervisor.New(supervisor.Config{
		Registry:         reg,
		Command:          supervisor.CampusApp{Bin: self, MongoURI: uri, LogLevel: "error", LogFormat: "json"}.Command,
		InstanceIDPrefix: "bench-",
		HealthInterval:   cfg.health,
		StopGrace:        5 * time.Second,
		Logger:           cfg.logger,
		Registerer:       s.metrics,
		Output:           io.Discard,
		IdleTimeout:      cfg.idleTimeout,
		Activity:         act,
		StartIdle:        true,
		MaxStarts:        cfg.maxStarts,
		Memory:           cfg.memory,
		MaxRunning:       cfg.maxRunning,
		Pool:             supervisor.CampusApp{Bin: self, MongoURI: uri, LogLevel: "error", LogFormat: "json"}.Pool(cfg.pool),
	})
	if err != nil {
		return nil, err
	}
	s.proxy, err = proxy.New(proxy.Config{Logger: cfg.logger, Registerer: s.metrics, HoldTimeout: cfg.holdTimeout, Waker: s.sup})
	if err != nil {
		return nil, err
	}
	act.Set(s.proxy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.proxyAddr = ln.Addr().String()

	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.sup.Run(rctx) })
	wg.Go(func() { _ = s.proxy.Run(rctx, reg) })
	wg.Go(func() { _ = httpserve.Serve(rctx, httpserve.New(s.proxy, cfg.logger), ln) })
	cleanup = append(cleanup, func() { cancel(); wg.Wait() })

	s.client = &http.Client{
		Timeout: cfg.holdTimeout + time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     time.Minute,
		},
	}
	cleanup = append(cleanup, s.client.CloseIdleConnections)
	return stop, nil
}

// get sends GET path for tenant t through the proxy and returns the time
// to the whole answer.
func (s *scaleSystem) get(ctx context.Context, t registry.Tenant, path string) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.proxyAddr+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Host = t.PrimaryHost
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return time.Since(start), 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode, err
}

// waitStates waits until every tenant's slot is in one of states.
func (s *scaleSystem) waitStates(ctx context.Context, ts []registry.Tenant, timeout time.Duration, states ...supervisor.ChildState) error {
	want := map[string]bool{}
	for _, t := range ts {
		want[t.Name] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, st := range s.sup.Status() {
			if want[st.Tenant] && slices.Contains(states, st.State) {
				n++
			}
		}
		if n >= len(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tenants %v after %s", n, len(want), states, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitPool waits (up to a few seconds) for the pool, if any, to be full
// again, so that every measured wake finds a pre-started process.
func (s *scaleSystem) waitPool(ctx context.Context) {
	if s.poolSize == 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if v, ok := gauge(s, supervisor.MetricPoolReady); ok && int(v) >= s.poolSize {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge reads a gauge of the system's metrics.
func gauge(s *scaleSystem, name string) (float64, bool) {
	mfs, err := s.metrics.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if g := m.GetGauge(); g != nil {
					return g.GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// pids are the processes of the system: this one and every app.
func (s *scaleSystem) pids() []int {
	out := []int{os.Getpid()}
	for _, st := range s.sup.Status() {
		if st.PID != 0 {
			out = append(out, st.PID)
		}
	}
	return out
}

// durations summarises latencies.
type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (d durations) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// benchScaleLogger shows only errors: the runs stop apps on purpose.
func benchScaleLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

var errBenchFailed = errors.New("bench: some requests failed (see the table)")

// lightLoad keeps every tenant of hot under light load for duration
// after its arrival: each tenant arrives at a random moment within
// arrive (0: all at once), sends a first request then when first is
// set, then one request every interval (the paced ones spread over the
// first interval). Each answer goes to record (called concurrently),
// first saying whether it was the arrival's one.
func (s *scaleSystem) lightLoad(ctx context.Context, hot []registry.Tenant, path string, interval, arrive, duration time.Duration, first bool,
	record func(t registry.Tenant, d time.Duration, code int, err error, first bool)) {
	lctx, cancel := context.WithTimeout(ctx, arrive+duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range hot {
		wg.Go(func() {
			if arrive > 0 {
				select {
				case <-lctx.Done():
					return
				case <-time.After(rand.N(arrive)):
				}
			}
			if first {
				d, code, err := s.get(lctx, t, path)
				record(t, d, code, err, true)
			}
			next := time.Now().Add(rand.N(interval))
			for {
				select {
				case <-lctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(interval)
				d, code, err := s.get(lctx, t, path)
				if lctx.Err() != nil {
					return
				}
				record(t, d, code, err, false)
			}
		})
	}
	wg.Wait()
}
