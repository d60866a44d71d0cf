// Package appserver serves the school app of one tenant (`campus app`):
// the app on its listener, its registration in Consul, following the
// tenant's record, graceful shutdown; and the warm-up of a pool process
// that holds no tenant yet. The command resolves the tenant and opens its
// database; this package serves.
package appserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// Config is one tenant's app server.
type Config struct {
	Tenant        registry.Tenant
	Store         *store.Store // the tenant's database, opened and checked (tenancy.OpenServed)
	Listen        string
	SecureCookies bool
	Logger        *slog.Logger // the server's lines, naming the tenant
	AppLogger     *slog.Logger // the app's (it names its tenant on every line itself)
	Metrics       *prometheus.Registry
	// Registry, when set, is re-read every Refresh (0: never) so that
	// hosts added or removed are answered without a restart; a tenant
	// re-created with another ID ends Run with tenancy.ErrTenantReplaced.
	Registry registry.Registry
	Refresh  time.Duration
	// Consul, when set, registers this instance at Advertise (default:
	// the listen address) with a /readyz check until shutdown.
	Consul    *consul.Registry
	Advertise string
}

// Run serves the app until ctx ends or the tenant is replaced.
func Run(ctx context.Context, cfg Config) error {
	t, logger := cfg.Tenant, cfg.Logger
	follow := tenancy.NewFollower(t)
	h, err := app.NewServer(app.Config{
		Tenant:        t,
		Hosts:         follow.Current,
		Store:         cfg.Store,
		Logger:        cfg.AppLogger,
		Registerer:    cfg.Metrics,
		Gatherer:      cfg.Metrics,
		SecureCookies: cfg.SecureCookies,
	})
	if err != nil {
		return fmt.Errorf("build app: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "database", t.Database, "hosts", t.Hosts)

	if cfg.Consul != nil {
		addr := cfg.Advertise
		if addr == "" {
			addr = ln.Addr().String()
		}
		stopReg := cfg.Consul.KeepInstanceUntilStopped(ctx, registry.Instance{
			ID: fmt.Sprintf("%s-%s", t.Name, addr), Tenant: t.Name, Addr: addr, Healthy: true,
		}, logger)
		defer stopReg()
		// On shutdown, leave the catalog first so the proxies stop
		// sending new requests while this server drains.
		go func() {
			<-ctx.Done()
			stopReg()
		}()
	}
	serveCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if cfg.Registry != nil && cfg.Refresh > 0 {
		go func() {
			if err := follow.Run(serveCtx, cfg.Registry, cfg.Refresh, logger); err != nil {
				logger.Error("stopping", "err", err)
				stop(err)
			}
		}()
	}
	go recoverOperations(serveCtx, cfg.Store, logger)
	srv := httpserve.New(h, logger)
	err = httpserve.Serve(serveCtx, srv, ln)
	logger.Info("stopped")
	if cause := context.Cause(serveCtx); errors.Is(cause, tenancy.ErrTenantReplaced) {
		return cause
	}
	return err
}

// recoverOperations rolls back the imports and bulk deletes that a writer
// left half done when it died, and finishes those it committed
// (store.RecoverOperations: the school's read models then follow): at the
// start, then every store.RecoverInterval while the app runs, so that a
// writer killed between its commit and its journal entry is seen within
// seconds. A failure is logged once until the next success.
func recoverOperations(ctx context.Context, st *store.Store, logger *slog.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := st.RecoverOperations(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			logger.Warn("recover interrupted imports and deletes (retried)", "err", err)
			failing = true
		case err == nil:
			failing = false
			if n > 0 {
				logger.Info("rolled back interrupted imports or deletes", "count", n)
			}
		}
		t.Reset(store.RecoverInterval)
	}
}

// WarmUp does, before any tenant is known, the start-up work of an app
// that depends on no tenant: it builds and throws away an app handler for
// a placeholder that is no tenant (no record of the registry, a store
// that was never opened and is never used), so that the code, the
// embedded static files and the templates are paged in, every page parsed
// (app.WarmUp), and their one-time costs paid while the process waits in
// the pool.
func WarmUp() {
	placeholder := registry.Tenant{ID: registry.NewID(), Name: "pool-warmup", DisplayName: "Pool warm-up",
		Hosts: []string{"pool-warmup.invalid"}, PrimaryHost: "pool-warmup.invalid", Database: "pool-warmup",
		State: registry.StateActive}
	reg := prometheus.NewRegistry()
	_, _ = app.NewServer(app.Config{Tenant: placeholder, Store: &store.Store{}, Logger: slog.New(slog.DiscardHandler),
		Registerer: reg, Gatherer: reg})
	_ = app.WarmUp() // a broken page is reported by the app that shows it
	runtime.GC()
}
