package main

import (
	"context"
	"errors"
	"fmt"

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
  proxy                   print a new read-only token for proxies.

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
	var fs = newFlags("token "+args[0], "", "")
	switch args[0] {
	case "tenant":
		fs = newFlags("token tenant", "NAME", "Print (or, with --rotate, replace) the Consul ACL token of one tenant's apps.")
		fs.BoolVar(&rotate, "rotate", false, "replace the tenant's token with a new one")
	case "proxy":
		fs = newFlags("token proxy", "", "Print a new read-only Consul ACL token for proxies.")
	default:
		fmt.Fprint(e.stderr, tokenHelp)
		return usageErr("unknown token command %q", args[0])
	}
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
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	reg, err := ro.open(ctx, e, logger, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	cr := reg.(*consul.Registry)
	var secret string
	if args[0] == "tenant" {
		name, err := oneName(fs)
		if err != nil {
			return err
		}
		if _, err := reg.Tenant(ctx, name); err != nil {
			return fmt.Errorf("token of tenant %s: %w", name, err)
		}
		secret, err = cr.TenantToken(ctx, name, rotate)
		if err != nil {
			return tokenErr(err)
		}
	} else {
		if fs.NArg() > 0 {
			return usageErr("unexpected arguments: %s", joinArgs(fs.Args()))
		}
		if secret, err = cr.ProxyToken(ctx, proxyServiceName); err != nil {
			return tokenErr(err)
		}
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
