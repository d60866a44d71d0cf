package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/campus-saas/campus/deploy/appserver"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/tenancy"
)

func runApp(ctx context.Context, e *env, args []string) error {
	fs := newFlags("app", "", "Serve the school app of one tenant from that tenant's database only.")
	var (
		lo        logOptions
		ro        registryOptions
		mo        mongoOptions
		tenant    = fs.String("tenant", "", "tenant to serve (required)")
		listen    = fs.String("listen", "127.0.0.1:8080", "address to listen on")
		advertise = fs.String("advertise", "", "address the proxy dials, when registering with Consul (default: the listen address)")
		migrate   = fs.Bool("migrate", false, "migrate the tenant's database before serving")
		secure    = fs.Bool("secure-cookies", false, "always mark cookies Secure (set when TLS terminates in front of the proxy)")
		register  = fs.Bool("register", true, "with the Consul registry: register this instance with a /readyz health check, deregister on shutdown")
		record    = fs.String("tenant-record", "", "the tenant's registry record as JSON, handed over by a supervisor: the app then opens no registry at all (campus dev)")
		refresh   = fs.Duration("tenant-refresh", 10*time.Second, "with a registry: how often to re-read the tenant's record, so hosts added or removed (`campus tenant host`) are answered without a restart (0: never)")
	)
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if *tenant == "" {
		return usageErr("--tenant is required")
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
	}
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	appLogger := logger // the app names its tenant on every line itself
	logger = logger.With("tenant", *tenant)

	metrics := newMetricsRegistry()

	var (
		t   registry.Tenant
		reg registry.Registry // nil when the supervisor handed over the record
	)
	if *record != "" {
		if t, err = tenantFromRecord(*record, *tenant); err != nil {
			return err
		}
	} else {
		if reg, err = ro.open(ctx, e, logger, metrics); err != nil {
			return err
		}
		defer reg.Close()
		if t, err = reg.Tenant(ctx, *tenant); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("tenant %q is not registered; create it with `campus tenant create %s --host HOST`", *tenant, *tenant)
			}
			return fmt.Errorf("look up tenant %q: %w", *tenant, err)
		}
	}
	uri, _, err := mo.address(ro.data).Resolve()
	if err != nil {
		return err
	}
	st, err := tenancy.OpenServed(ctx, uri, t, *migrate, logger)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))

	cfg := appserver.Config{Tenant: t, Store: st, Listen: *listen, SecureCookies: *secure, Logger: logger, AppLogger: appLogger,
		Metrics: metrics, Registry: reg, Refresh: *refresh, Advertise: *advertise}
	if kind, _ := ro.backend(e); reg != nil && kind == "consul" && *register {
		var ok bool
		if cfg.Consul, ok = reg.(*consul.Registry); !ok {
			return errors.New("self-registration needs the Consul registry")
		}
	}
	return appserver.Run(ctx, cfg)
}

// tenantFromRecord decodes the record a supervisor handed over with
// --tenant-record and checks it names the tenant of --tenant.
func tenantFromRecord(record, name string) (registry.Tenant, error) {
	var t registry.Tenant
	if err := json.Unmarshal([]byte(record), &t); err != nil {
		return registry.Tenant{}, usageErr("--tenant-record: not a tenant record: %v", err)
	}
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, usageErr("--tenant-record: %v", err)
	}
	if t.Name != name {
		return registry.Tenant{}, usageErr("--tenant-record is tenant %q, not --tenant %q", t.Name, name)
	}
	return t, nil
}
