package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/control"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/tenancy"
)

func runControl(ctx context.Context, e *env, args []string) error {
	fs := newFlags("control", "", "Serve the control API (/api/v1/) and the operators' console (/console/), opened with operator tokens "+
		"(campus operator token create). Keep it off the public internet: see docs/PRODUCTION.md.")
	var (
		lo                logOptions
		ro                registryOptions
		mo                mongoOptions
		pu                publicURLOptions
		listen, proxies   string
		certFile, keyFile string
		secureCookies     bool
		statsInterval     time.Duration
		auditKeep         time.Duration
	)
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	pu.register(fs)
	fs.StringVar(&listen, "listen", "127.0.0.1:8002", "address to serve the API and console on")
	fs.StringVar(&proxies, "proxy-admin", "", "the proxies' admin URLs, comma-separated (e.g. http://127.0.0.1:8001), whose counters the console shows; default with Consul: every registered proxy")
	fs.StringVar(&certFile, "tls-cert-file", "", "serve HTTPS with this certificate (PEM) …")
	fs.StringVar(&keyFile, "tls-key-file", "", "… and this key")
	fs.DurationVar(&statsInterval, "stats-interval", 15*time.Second, "how often the proxies' counters are read")
	fs.DurationVar(&auditKeep, "audit-keep", control.DefaultAuditKeep, "how long the audit trail is kept: older entries are deleted at start and every hour")
	fs.BoolVar(&secureCookies, "secure-cookies", false, "mark the console's cookies Secure although this server speaks plain HTTP (behind a TLS-terminating balancer)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if (certFile == "") != (keyFile == "") {
		return usageErr("--tls-cert-file and --tls-key-file go together")
	}
	public, err := pu.resolve(ro.data)
	if err != nil {
		return err
	}
	reg, logger, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	creg, ok := reg.(control.Registry)
	if !ok {
		return fmt.Errorf("the %T registry keeps no operator tokens", reg)
	}
	creds, _ := reg.(tenancy.Credentials) // Consul: the server acts with its own operator token
	if statsInterval < 100*time.Millisecond {
		return usageErr("--stats-interval must be at least 100ms")
	}
	if auditKeep < 24*time.Hour {
		return usageErr("--audit-keep must be at least 24h (a day of the audit trail)")
	}
	stats := &control.Stats{Logger: logger, Interval: statsInterval}
	if proxies != "" {
		list := strings.Split(proxies, ",")
		stats.Sources = func(context.Context) ([]string, error) { return list, nil }
	} else if cr, ok := reg.(*consul.Registry); ok {
		stats.Sources = func(ctx context.Context) ([]string, error) {
			svcs, _, err := cr.Client().Health().Service(consul.ProxyServiceName, "", true, nil)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, s := range svcs {
				out = append(out, "http://"+net.JoinHostPort(s.Service.Address, strconv.Itoa(s.Service.Port)))
			}
			return out, nil
		}
	}
	s := &control.Server{
		Manager: &tenancy.Manager{Registry: reg, Database: mo.address(ro.data), Credentials: creds,
			Logger: logger, Notes: e.stderr, Version: version},
		Registry: creg, Stats: stats, Public: public, Logger: logger, SecureCookies: secureCookies, AuditKeep: auditKeep,
	}
	return control.Serve(ctx, s, control.ServeConfig{Listen: listen, CertFile: certFile, KeyFile: keyFile})
}
