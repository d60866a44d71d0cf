package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// Scale to zero (issue 12): `campus app-pool`, a pre-started app process
// of the supervisor's pool (deploy/supervisor/pool.go). It starts with no
// tenant, no record, no credential and no database connection, reads ONE
// assignment line on stdin — the tenant's record and that tenant's
// database URI — and then is `campus app` for that tenant for the rest of
// its life. stdin is never read again.

func runAppPool(ctx context.Context, e *env, args []string) error {
	fs := newFlags("app-pool", "", "Wait, holding no tenant, for one assignment line on stdin (from the supervisor), then serve that tenant as `campus app` does.")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	warmUp()
	a, err := supervisor.ReadAssignment(e.stdin)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while unbound
		}
		return err
	}
	rec, err := json.Marshal(a.Tenant)
	if err != nil {
		return fmt.Errorf("encode tenant record: %w", err)
	}
	// The URI is the only secret, and it is this tenant's: it reaches the
	// app through its environment lookup, as MONGODB_URI would.
	bound := *e
	bound.stdin = strings.NewReader("")
	bound.getenv = func(k string) string {
		if k == "MONGODB_URI" {
			return a.MongoURI
		}
		return e.getenv(k)
	}
	return runApp(ctx, &bound, []string{
		"--tenant", a.Tenant.Name,
		"--tenant-record", string(rec),
		"--listen", a.Listen,
		"--migrate",
		"--log-level", a.LogLevel,
		"--log-format", a.LogFmt,
	})
}

// warmUp does, before any tenant is known, the start-up work of an app
// that depends on no tenant: it builds and throws away an app handler for
// a placeholder that is no tenant (no record of the registry, a store
// that was never opened and is never used), so that the code, the
// embedded static files and the templates are paged in and their
// one-time costs paid while the process waits in the pool.
func warmUp() {
	placeholder := registry.Tenant{ID: registry.NewID(), Name: "pool-warmup", DisplayName: "Pool warm-up",
		Hosts: []string{"pool-warmup.invalid"}, PrimaryHost: "pool-warmup.invalid", Database: "pool-warmup",
		State: registry.StateActive}
	reg := prometheus.NewRegistry()
	_, _ = app.NewServer(app.Config{Tenant: placeholder, Store: &store.Store{}, Logger: slog.New(slog.DiscardHandler),
		Registerer: reg, Gatherer: reg})
	runtime.GC()
}
