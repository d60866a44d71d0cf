package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/campus-saas/campus/registry/consul"
)

const tokenHelp = `Usage: campus token COMMAND [flags]

Consul ACL tokens (the Consul registry only; run with an operator token in
CONSUL_HTTP_TOKEN that may write ACLs). With ACLs on (default deny), a
school's app can register only its own service, campus-app-<tenant>, and a
proxy reads the registry without writing it.

Commands:
  tenant NAME [--rotate]  print the app token of tenant NAME, creating it when
                          missing; --rotate replaces it (the old one stops
                          working at once). Give it to that tenant's apps only,
                          as CONSUL_HTTP_TOKEN (Nomad: a variable; compose: a
                          secret file, CONSUL_HTTP_TOKEN_FILE).
  proxy                   print a new token for proxies: reads the registry,
                          registers only the campus-proxy service.
  reader                  print a new read-only token (Prometheus's Consul
                          service discovery).

--secret-file FILE (tenant, proxy, reader): make the UUID in FILE the token
instead of printing a new one (compose: secrets made by secrets.sh). Running it
again changes nothing; for a tenant, its other tokens are revoked.

Deleting a tenant with --purge-data, or purging it, revokes its token.
`

func runToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, tokenHelp)
		if len(args) == 0 {
			return usageErr("a COMMAND is required")
		}
		return errHelp
	}
	var (
		lo     logOptions
		ro     registryOptions
		rotate bool
	)
	var fs *flag.FlagSet
	switch args[0] {
	case "tenant":
		fs = newFlags("token tenant", "NAME", "Print (or, with --rotate, replace) the Consul ACL token of one tenant's apps.")
		fs.BoolVar(&rotate, "rotate", false, "replace the tenant's token with a new one")
	case "proxy":
		fs = newFlags("token proxy", "", "Print a new Consul ACL token for proxies: read the registry, register the campus-proxy service.")
	case "reader":
		fs = newFlags("token reader", "", "Print a new read-only Consul ACL token (Prometheus's service discovery).")
	default:
		fmt.Fprint(e.stderr, tokenHelp)
		return usageErr("unknown token command %q%s", args[0], didYouMean(args[0], []string{"tenant", "proxy", "reader"}))
	}
	secretFile := fs.String("secret-file", "", "make the UUID in this file the token (idempotent) instead of printing a new one")
	lo.register(fs)
	ro.register(fs)
	if err := parseFlags(fs, args[1:], e); err != nil {
		return err
	}
	if kind, err := ro.backend(e); err != nil {
		return err
	} else if kind != "consul" {
		return usageErr("tokens are Consul ACL tokens: set CONSUL_HTTP_ADDR or --registry consul (the embedded registry has no tokens; see docs/ARCHITECTURE.md)")
	}
	reg, _, err := ro.openLogged(ctx, e, &lo)
	if err != nil {
		return err
	}
	defer reg.Close()
	cr := reg.(*consul.Registry)
	chosen := ""
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		if chosen = strings.TrimSpace(string(b)); chosen == "" {
			return fmt.Errorf("--secret-file %s is empty", *secretFile)
		}
		if rotate {
			return usageErr("--rotate and --secret-file: choose one")
		}
	}
	var secret string
	switch args[0] {
	case "tenant":
		name, err := oneName(fs)
		if err != nil {
			return err
		}
		if _, err := reg.Tenant(ctx, name); err != nil {
			return fmt.Errorf("token of tenant %s: %w", name, err)
		}
		if chosen != "" {
			err = cr.SetTenantToken(ctx, name, chosen)
		} else {
			secret, err = cr.TenantToken(ctx, name, rotate)
		}
		if err != nil {
			return tokenErr(err)
		}
	default:
		if fs.NArg() > 0 {
			return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
		}
		if secret, err = cr.ProxyToken(ctx, consul.ProxyServiceName, args[0] == "proxy", chosen); err != nil {
			return tokenErr(err)
		}
	}
	if chosen != "" {
		fmt.Fprintf(e.stdout, "%s token set from %s\n", args[0], *secretFile) // never the secret itself
		return nil
	}
	fmt.Fprintln(e.stdout, secret)
	return nil
}

func tokenErr(err error) error {
	if errors.Is(err, consul.ErrACLDisabled) {
		return fmt.Errorf("%w: start Consul with acl { enabled = true, default_policy = \"deny\" } (docs/PRODUCTION.md)", err)
	}
	return err
}
