package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
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
	trustedProxies  string         // --trusted-proxies
	trusted         []netip.Prefix // parsed by check
	accessLog       *slog.Logger   // the proxy's request lines (see openAccessLog); nil: the logger

	// consulReg, set by the command when its registry is Consul, is
	// where the proxy registers itself (with registerSelf).
	consulReg *consul.Registry

	// HTTPS (proxy_tls.go); out receives what a person must read at start
	// (the dev CA's trust instructions).
	tls tlsOptions
	out io.Writer
	// Scale to zero (issue 12): wakeViaRegistry (campus proxy --wake)
	// asks for idle tenants to be started through the registry; onProxy,
	// when set, gets the proxy once made (campus dev gives it to the
	// supervisor as its Activity).
	wakeViaRegistry bool
	onProxy         func(*proxy.Proxy)
	// Lookups on a miss (issue 11): with a registry that has them
	// (Consul), a host with no route or no healthy instance is read from
	// the registry at once, at most lookupRate times a second (<0: never).
	lookupRate float64
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
	fs.BoolVar(&o.registerSelf, "register", true, "with the Consul registry: register this proxy as service "+consul.ProxyServiceName+" at its admin address (for Prometheus) with a /healthz check, deregister on shutdown")
	fs.StringVar(&o.adminAdvertise, "admin-advertise", "", "admin address Consul and Prometheus dial, when registering with Consul (default: the admin listen address, which must then not be a wildcard)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the load balancers or TLS terminators in front of the proxy: only their X-Forwarded-For and X-Forwarded-Proto are believed (the login lock-out then counts each visitor, not the balancer); default nobody's")
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
	var pu publicURLOptions
	lo.register(fs)
	ro.register(fs)
	po.register(fs)
	po.tls.register(fs, false)
	pu.register(fs)
	fs.Float64Var(&po.lookupRate, "lookup-rate", proxy.DefaultLookupRate, "with a registry that can read one host at once (Consul): at most this many such reads a second, for requests whose host has no route or no healthy instance yet (negative: none)")
	fs.BoolVar(&po.wakeViaRegistry, "wake", true, "ask for a tenant with no running instance to be started, through the registry (scale to zero: the supervisors watch these requests)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	po.tls.dataDir, po.out = ro.data, e.stdout
	if err := noArgs(fs); err != nil {
		return err
	}
	public, err := pu.resolve(ro.data)
	if err != nil {
		return err
	}
	backend, err := ro.backend(e)
	if err != nil {
		return err
	}
	if err := po.check(backend); err != nil {
		return err
	}
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	// The proxy serves what it listens on; the public URL (shared with
	// the CLI through $CAMPUS_PUBLIC_URL) is how people reach it, maybe
	// through a load balancer: logged so that the two can be compared.
	logger.Info("tenant links", "public_url", public.String(), "listen", po.listen)
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
	var waker proxy.Waker
	if po.wakeViaRegistry {
		waker = proxy.RegistryWaker{Registry: reg, Logger: logger}
	}
	return serveProxy(ctx, logger, metrics, reg, po, waker, nil)
}

// serveProxy runs the proxy's watch loop and both listeners until ctx ends.
// extra, when set, runs beside them in the same group (campus dev's
// supervisor).
func serveProxy(ctx context.Context, logger *slog.Logger, metrics *prometheus.Registry, reg registry.Registry, po proxyOptions, waker proxy.Waker, extra func(context.Context) error) error {
	p, err := proxy.New(proxy.Config{
		TrustedProxies:  po.trusted,
		Logger:          logger,
		AccessLog:       po.accessLog,
		Registerer:      metrics,
		HoldTimeout:     po.holdTimeout,
		UpstreamTimeout: po.upstreamTimeout,
		Waker:           waker,
		Lookup:          hostLookupOf(reg, po.lookupRate),
		LookupRate:      po.lookupRate,
	})
	if err != nil {
		return err
	}
	if err := metrics.Register(p.StateCollector()); err != nil {
		return fmt.Errorf("register tenant state metric: %w", err)
	}
	if po.onProxy != nil {
		po.onProxy(p)
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
	handler := http.Handler(p)
	var (
		tlsLn net.Listener
		ts    *tlsSetup
	)
	if po.tls.enabled() {
		if ts, err = po.tls.setup(p, metrics, logger, po.consulReg); err == nil {
			tlsLn, err = net.Listen("tcp", po.tls.listen)
			if err != nil {
				ts.stop()
			}
		}
		if err != nil {
			ln.Close()
			adminLn.Close()
			return err
		}
		defer ts.stop()
		handler = ts.httpHandler // ACME challenges, then a redirect to HTTPS
		if ts.notice != "" && po.out != nil {
			fmt.Fprintf(po.out, "%s\n\n", ts.notice)
		}
		logger.Info("proxy listening for HTTPS", "addr", tlsLn.Addr().String(), "hsts", po.tls.hsts)
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
	g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(handler, logger), ln) })
	if tlsLn != nil {
		h := p.ServeTLS(proxy.TLSOptions{HSTS: po.tls.hsts})
		srv := httpserve.New(h, logger)
		srv.ConnContext = p.ConnContext // per-connection reset budget (HTTP/2 rapid reset)
		g.Go(func() error { return httpserve.ServeTLS(gctx, srv, tlsLn, ts.config) })
	}
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

// hostLookupOf is reg's host lookup (proxy.Config.Lookup), nil when reg
// has none (the embedded registry) or rate < 0. The state file's wrapper
// passes its backend's through.
func hostLookupOf(reg registry.Registry, rate float64) registry.HostLookup {
	if rate < 0 {
		return nil
	}
	if c, ok := reg.(*cache.Registry); ok && !c.Lookups() {
		return nil
	}
	hl, _ := reg.(registry.HostLookup)
	return hl
}
