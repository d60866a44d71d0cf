package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/cache"
	"github.com/campus-saas/campus/registry/consul"
)

// proxyOptions are the flags of the proxy, shared by `campus proxy` and
// `campus dev`.
type proxyOptions struct {
	listen          string
	adminListen     string
	holdTimeout     time.Duration
	upstreamTimeout time.Duration
	stateFile       string
	registerSelf    bool
	adminAdvertise  string
	checkInterval   time.Duration
	accessLog       *slog.Logger // the proxy's request lines (see openAccessLog); nil: the logger

	// consulReg, set by the command when its registry is Consul, is
	// where the proxy registers itself (with registerSelf).
	consulReg *consul.Registry
}

func (o *proxyOptions) register(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8000", "address the proxy serves tenants on")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:8001", "address of /metrics, /healthz and /routes (keep it private)")
	fs.DurationVar(&o.holdTimeout, "hold-timeout", 5*time.Second, "how long a request waits for a tenant with no running instance before 503")
	fs.DurationVar(&o.upstreamTimeout, "upstream-timeout", 30*time.Second, "how long to wait for an app's response headers before 504")
	fs.StringVar(&o.stateFile, "state-file", "", "keep the last good routing snapshot in this file and route from it when the registry is unreachable at start (recommended with Consul)")
	fs.BoolVar(&o.registerSelf, "register", true, "with the Consul registry: register this proxy as service "+proxyServiceName+" at its admin address (for Prometheus) with a /healthz check, deregister on shutdown")
	fs.StringVar(&o.adminAdvertise, "admin-advertise", "", "admin address Consul and Prometheus dial, when registering with Consul (default: the admin listen address, which must then not be a wildcard)")
}

func newMetricsRegistry() *prometheus.Registry {
	m := prometheus.NewRegistry()
	m.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func runProxy(ctx context.Context, e *env, args []string) error {
	fs := newFlags("proxy", "", "Route each request by its Host header to the healthy app instances of exactly one tenant.")
	var (
		lo logOptions
		ro registryOptions
		po proxyOptions
	)
	lo.register(fs)
	ro.register(fs)
	po.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	backend, err := ro.backend(e)
	if err != nil {
		return err
	}
	if err := po.checkRegistration(backend); err != nil {
		return err
	}
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	accessLog, flushAccessLog, err := openAccessLog(e, &lo)
	if err != nil {
		return err
	}
	defer flushAccessLog() // after serveProxy: the listeners have drained
	po.accessLog = accessLog
	metrics := newMetricsRegistry()
	reg, err := ro.open(ctx, e, logger, metrics)
	if err != nil {
		return err
	}
	po.consulReg, _ = reg.(*consul.Registry)
	po.checkInterval = ro.consulCheck
	if po.stateFile != "" {
		cached, err := cache.New(reg, cache.Config{Path: po.stateFile, Logger: logger})
		if err != nil {
			reg.Close()
			return fmt.Errorf("state file: %w", err)
		}
		reg = cached
	}
	defer reg.Close()
	return serveProxy(ctx, logger, metrics, reg, po, nil, nil)
}

// serveProxy runs the proxy's watch loop and both listeners until ctx ends.
// extra, when set, runs beside them in the same group (campus dev's
// supervisor).
func serveProxy(ctx context.Context, logger *slog.Logger, metrics *prometheus.Registry, reg registry.Registry, po proxyOptions, waker proxy.Waker, extra func(context.Context) error) error {
	p, err := proxy.New(proxy.Config{
		Logger:          logger,
		AccessLog:       po.accessLog,
		Registerer:      metrics,
		HoldTimeout:     po.holdTimeout,
		UpstreamTimeout: po.upstreamTimeout,
		Waker:           waker,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", po.listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", po.adminListen)
	if err != nil {
		ln.Close()
		return err
	}
	logger.Info("proxy listening", "addr", ln.Addr().String(), "admin", adminLn.Addr().String())
	stopRegistration := func() {}
	if po.consulReg != nil && po.registerSelf {
		if stopRegistration, err = selfRegisterProxy(ctx, po, adminLn.Addr(), logger); err != nil {
			ln.Close()
			adminLn.Close()
			return err
		}
		defer stopRegistration()
	}

	g, gctx := errgroup.WithContext(ctx)
	// On shutdown (or a failure), leave the catalog first, while the
	// listeners drain. gctx also ends when Wait returns.
	go func() {
		<-gctx.Done()
		stopRegistration()
	}()
	g.Go(func() error { return p.Run(gctx, reg) })
	g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(p, logger), ln) })
	g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(p.AdminHandler(metrics), logger), adminLn) })
	if extra != nil {
		g.Go(func() error { return extra(gctx) })
	}
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // a clean shutdown
	}
	return err
}

// openAccessLog returns the proxy's access logger: the format and level of
// lo, on stderr through a proxy.AccessLog buffer, so that a request costs
// no write system call. The returned function flushes and closes the
// buffer; call it once the proxy's listeners have drained.
func openAccessLog(e *env, lo *logOptions) (*slog.Logger, func(), error) {
	buf := proxy.NewAccessLog(e.stderr, 0, 0)
	logger, err := lo.loggerTo(e, buf)
	if err != nil {
		buf.Close()
		return nil, nil, err
	}
	return logger, func() { _ = buf.Close() }, nil
}
