package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/campus-saas/campus/deploy/proxyserver"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/cache"
	"github.com/campus-saas/campus/registry/consul"
)

// proxyOptions are the flags of the proxy, shared by `campus proxy` and
// `campus dev`: the server's configuration (deploy/proxyserver; the
// command sets its logger, registry, metrics and waker) and the flags
// that become it.
type proxyOptions struct {
	proxyserver.Config
	stateFile      string
	trustedProxies string // --trusted-proxies, parsed by check
	// wakeViaRegistry (campus proxy --wake, scale to zero, issue 12)
	// asks for idle tenants to be started through the registry.
	wakeViaRegistry bool
	tls             tlsOptions // HTTPS (proxy_tls.go)
}

func (o *proxyOptions) register(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8000", "address the proxy serves tenants on")
	fs.StringVar(&o.AdminListen, "admin-listen", "127.0.0.1:8001", "address of /metrics, /healthz and /routes (keep it private)")
	fs.DurationVar(&o.HoldTimeout, "hold-timeout", 5*time.Second, "how long a request waits for a tenant with no running instance before 503")
	fs.DurationVar(&o.UpstreamTimeout, "upstream-timeout", 30*time.Second, "how long to wait for an app's response headers before 504")
	fs.StringVar(&o.stateFile, "state-file", "", "keep the last good routing snapshot in this file and route from it when the registry is unreachable at start (recommended with Consul)")
	fs.BoolVar(&o.Register, "register", true, "with the Consul registry: register this proxy as service "+consul.ProxyServiceName+" at its admin address (for Prometheus) with a /healthz check, deregister on shutdown")
	fs.StringVar(&o.AdminAdvertise, "admin-advertise", "", "admin address Consul and Prometheus dial, when registering with Consul (default: the admin listen address, which must then not be a wildcard)")
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
	fs.Float64Var(&po.LookupRate, "lookup-rate", proxy.DefaultLookupRate, "with a registry that can read one host at once (Consul): at most this many such reads a second, for requests whose host has no route or no healthy instance yet (negative: none)")
	fs.BoolVar(&po.wakeViaRegistry, "wake", true, "ask for a tenant with no running instance to be started, through the registry (scale to zero: the supervisors watch these requests)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	po.tls.dataDir, po.Notice = ro.data, e.stdout
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
	logger.Info("tenant links", "public_url", public.String(), "listen", po.Listen)
	accessLog, flushAccessLog, err := openAccessLog(e, &lo)
	if err != nil {
		return err
	}
	defer flushAccessLog() // after serveProxy: the listeners have drained
	po.AccessLog = accessLog
	metrics := newMetricsRegistry()
	reg, err := ro.open(ctx, e, logger, metrics)
	if err != nil {
		return err
	}
	po.Consul, _ = reg.(*consul.Registry)
	po.CheckInterval = ro.consulCheck
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

// serveProxy runs the proxy of po on reg until ctx ends. extra, when set,
// runs beside it in the same group (campus dev's supervisor).
func serveProxy(ctx context.Context, logger *slog.Logger, metrics *prometheus.Registry, reg registry.Registry, po proxyOptions, waker proxy.Waker, extra func(context.Context) error) error {
	cfg := po.Config
	cfg.Logger, cfg.Metrics, cfg.Registry, cfg.Waker, cfg.Extra = logger, metrics, reg, waker, extra
	cfg.TLS = po.tls.config()
	return proxyserver.Run(ctx, cfg)
}

// check refuses, before anything starts, a proxy that would register a
// wildcard admin address in Consul, or whose --trusted-proxies or HTTPS
// flags do not parse (it keeps the parsed values).
func (o *proxyOptions) check(backend string) error {
	if backend == "consul" && o.Register {
		if o.AdminAdvertise == "" && proxyserver.WildcardHost(o.AdminListen) {
			return errWildcardAdmin(o.AdminListen)
		}
		if proxyserver.WildcardHost(o.AdminAdvertise) {
			return errWildcardAdmin(o.AdminAdvertise)
		}
	}
	trusted, err := proxy.ParseTrustedProxies(o.trustedProxies)
	if err != nil {
		return usageErr("--trusted-proxies: %v", err)
	}
	o.TrustedProxies = trusted
	return o.tls.check(backend)
}

func errWildcardAdmin(addr string) error {
	return usageErr("the admin listener %s is a wildcard address that Consul and Prometheus cannot dial: set --admin-advertise to the host:port they reach it at, or --register=false", addr)
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
