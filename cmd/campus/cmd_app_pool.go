package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/campus-saas/campus/deploy/appserver"
	"github.com/campus-saas/campus/deploy/supervisor"
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
	appserver.WarmUp()
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
