// Package proxyserver runs the proxy of `campus proxy` and `campus dev`:
// the proxy on a registry, its plain, HTTPS and admin listeners, the
// certificates (ACME on demand or the dev CA), its registration in Consul,
// and graceful shutdown. The command parses and checks the flags; this
// package serves.
package proxyserver

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
	"golang.org/x/sync/errgroup"

	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/cache"
	"github.com/campus-saas/campus/registry/consul"
)

// Config is one proxy server.
type Config struct {
	Listen          string // plain HTTP (with TLS: ACME challenges and the redirect)
	AdminListen     string // /metrics, /healthz and /routes
	HoldTimeout     time.Duration
	UpstreamTimeout time.Duration
	TrustedProxies  []netip.Prefix
	Logger          *slog.Logger
	AccessLog       *slog.Logger // the request lines; nil: Logger
	Metrics         *prometheus.Registry
	Registry        registry.Registry
	Waker           proxy.Waker // nil: no wake requests
	// LookupRate caps the reads of one host from a registry that has
	// them (Consul) on a miss, a second; negative: none.
	LookupRate float64
	// OnProxy, when set, gets the proxy once made (campus dev gives it
	// to the supervisor as its Activity).
	OnProxy func(*proxy.Proxy)

	// Consul is the registry when it is Consul. With Register the proxy
	// registers its admin address (AdminAdvertise, else the admin
	// listener's) as a service checked every CheckInterval until it
	// stops; certificates may be kept in its KV (TLS.CertDir "").
	Consul         *consul.Registry
	Register       bool
	AdminAdvertise string
	CheckInterval  time.Duration

	TLS    *TLS      // nil: HTTPS off
	Notice io.Writer // gets what a person must read at start (the dev CA's trust instructions)
	// Extra, when set, runs beside the listeners in the same group
	// (campus dev's supervisor).
	Extra func(context.Context) error
}

// Run serves the proxy's watch loop and its listeners until ctx ends (a
// clean shutdown returns nil) or one of them fails.
func Run(ctx context.Context, cfg Config) error {
	logger, metrics, reg := cfg.Logger, cfg.Metrics, cfg.Registry
	p, err := proxy.New(proxy.Config{
		TrustedProxies:  cfg.TrustedProxies,
		Logger:          logger,
		AccessLog:       cfg.AccessLog,
		Registerer:      metrics,
		HoldTimeout:     cfg.HoldTimeout,
		UpstreamTimeout: cfg.UpstreamTimeout,
		Waker:           cfg.Waker,
		Lookup:          hostLookupOf(reg, cfg.LookupRate),
		LookupRate:      cfg.LookupRate,
	})
	if err != nil {
		return err
	}
	if err := metrics.Register(p.StateCollector()); err != nil {
		return fmt.Errorf("register tenant state metric: %w", err)
	}
	if cfg.OnProxy != nil {
		cfg.OnProxy(p)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return err
	}
	handler := http.Handler(p)
	var (
		tlsLn net.Listener
		ts    *tlsSetup
	)
	if cfg.TLS != nil {
		if ts, err = cfg.TLS.setup(p, metrics, logger, cfg.Consul); err == nil {
			tlsLn, err = net.Listen("tcp", cfg.TLS.Listen)
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
		if ts.notice != "" && cfg.Notice != nil {
			fmt.Fprintf(cfg.Notice, "%s\n\n", ts.notice)
		}
		logger.Info("proxy listening for HTTPS", "addr", tlsLn.Addr().String(), "hsts", cfg.TLS.HSTS)
	}
	logger.Info("proxy listening", "addr", ln.Addr().String(), "admin", adminLn.Addr().String())
	stopRegistration := func() {}
	if cfg.Consul != nil && cfg.Register {
		if stopRegistration, err = selfRegister(ctx, cfg, adminLn.Addr()); err != nil {
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
	// The public listeners cap the connections of one client address
	// (under TLS also how many it opens a second: each costs a handshake).
	g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(handler, logger), p.LimitListener(ln)) })
	if tlsLn != nil {
		h := p.ServeTLS(proxy.TLSOptions{HSTS: cfg.TLS.HSTS})
		srv := httpserve.New(h, logger)
		srv.ConnContext = p.ConnContext // per-connection reset budget (HTTP/2 rapid reset)
		g.Go(func() error { return httpserve.ServeTLS(gctx, srv, p.LimitTLSListener(tlsLn), ts.config) })
	}
	g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(p.AdminHandler(metrics), logger), adminLn) })
	if cfg.Extra != nil {
		g.Go(func() error { return cfg.Extra(gctx) })
	}
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // a clean shutdown
	}
	return err
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
