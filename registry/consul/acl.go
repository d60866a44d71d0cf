package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// Consul ACLs (default deny) are what make an instance's service name a
// credential. Three kinds of token:
//
//   - operator: `campus tenant …`; writes campus/tenants/* and campus/hosts/*
//     and manages the tenants' policies and tokens (a management token, or
//     one with acl = "write" and key_prefix "campus/" write);
//   - proxy: read-only (ProxyRules): the tenants' keys, every node, and the
//     campus-app-* services;
//   - tenant T: TenantRules: write exactly the service campus-app-T (an exact
//     `service` rule, never `service_prefix`, which for "nairobi" would also
//     match "nairobi2") and read exactly T's own tenant key.
//
// A tenant's token is bound to the policy TenantPolicyName(T); deleting or
// purging the tenant deletes the policy and every token bound to it.

// TenantPolicyName is the name of tenant's ACL policy: its service name,
// so that two installations with different prefixes never share one.
func (r *Registry) TenantPolicyName(tenant string) string { return r.ServiceName(tenant) }

// tenantTokenDescription marks the tokens campus creates for a tenant.
func tenantTokenDescription(tenant string) string { return "campus app token of tenant " + tenant }

// TenantRules are the ACL rules of tenant's token.
func (r *Registry) TenantRules(tenant string) string {
	return fmt.Sprintf("service %q {\n  policy = \"write\"\n}\nkey %q {\n  policy = \"read\"\n}\n",
		r.ServiceName(tenant), r.tenantKey(tenant))
}

// ProxyRules are the ACL rules of a proxy's read-only token: it reads the
// tenants (and, to resolve them, the host keys), the node list, every check
// and the app services. It writes nothing but its own service registration,
// proxyService.
func (r *Registry) ProxyRules(proxyService string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"read\"\n}\n", r.cfg.Prefix)
	fmt.Fprintf(&b, "node_prefix \"\" {\n  policy = \"read\"\n}\n")
	fmt.Fprintf(&b, "service_prefix %q {\n  policy = \"read\"\n}\n", r.cfg.ServicePrefix)
	if proxyService != "" {
		fmt.Fprintf(&b, "service %q {\n  policy = \"write\"\n}\n", proxyService)
	}
	return b.String()
}

// ErrACLDisabled is returned by the token functions when the Consul agent
// runs without ACLs: then any client may register any service, and the
// deployment is not isolated at the registry (docs/ARCHITECTURE.md).
var ErrACLDisabled = errors.New("consul ACLs are not enabled on this agent")

// aclError maps Consul's answer when ACLs are off.
func aclError(err error) error {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnauthorized && strings.Contains(se.Body, "ACL support disabled") {
		return ErrACLDisabled
	}
	if err != nil && strings.Contains(err.Error(), "ACL support disabled") {
		return ErrACLDisabled
	}
	return err
}

// TenantToken returns the SecretID of tenant's token, creating its policy
// and token when missing. With rotate, a new token replaces every existing
// one (the old ones stop working at once). The caller's token must be
// allowed acl = "write".
func (r *Registry) TenantToken(ctx context.Context, tenant string, rotate bool) (string, error) {
	if err := registry.ValidateName(tenant); err != nil {
		return "", fmt.Errorf("tenant token: %w", err)
	}
	acl := r.client.ACL()
	w := wopts(ctx)
	pol, err := r.ensurePolicy(ctx, tenant)
	if err != nil {
		return "", err
	}
	existing, _, err := acl.TokenListFiltered(api.ACLTokenFilterOptions{Policy: pol.ID}, qopts(ctx))
	if err != nil {
		return "", fmt.Errorf("tenant token of %s: list tokens: %w", tenant, aclError(err))
	}
	if !rotate {
		for _, e := range existing {
			tok, _, err := acl.TokenRead(e.AccessorID, qopts(ctx))
			if err != nil {
				return "", fmt.Errorf("tenant token of %s: read token: %w", tenant, aclError(err))
			}
			return tok.SecretID, nil
		}
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{
		Description: tenantTokenDescription(tenant),
		Policies:    []*api.ACLTokenPolicyLink{{ID: pol.ID}},
	}, w)
	if err != nil {
		return "", fmt.Errorf("tenant token of %s: create token: %w", tenant, aclError(err))
	}
	for _, e := range existing {
		if _, err := acl.TokenDelete(e.AccessorID, w); err != nil {
			return "", fmt.Errorf("tenant token of %s: revoke the old token: %w", tenant, aclError(err))
		}
	}
	r.log.Info("tenant token issued", "tenant", tenant, "accessor", tok.AccessorID, "rotated", rotate && len(existing) > 0)
	return tok.SecretID, nil
}

// ensurePolicy reads tenant's policy, creating it when missing and
// correcting its rules when they differ (an old prefix, a hand edit).
func (r *Registry) ensurePolicy(ctx context.Context, tenant string) (*api.ACLPolicy, error) {
	acl := r.client.ACL()
	name := r.TenantPolicyName(tenant)
	rules := r.TenantRules(tenant)
	pol, _, err := acl.PolicyReadByName(name, qopts(ctx))
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("tenant policy %s: read: %w", name, aclError(err))
	}
	if pol == nil {
		pol, _, err = acl.PolicyCreate(&api.ACLPolicy{
			Name:        name,
			Description: "campus: register only the app service of tenant " + tenant,
			Rules:       rules,
		}, wopts(ctx))
		if err != nil {
			return nil, fmt.Errorf("tenant policy %s: create: %w", name, aclError(err))
		}
		return pol, nil
	}
	if pol.Rules != rules {
		pol.Rules = rules
		if pol, _, err = acl.PolicyUpdate(pol, wopts(ctx)); err != nil {
			return nil, fmt.Errorf("tenant policy %s: update rules: %w", name, aclError(err))
		}
	}
	return pol, nil
}

// RevokeTenantToken deletes every token of tenant and its policy. A tenant
// without them is not an error.
func (r *Registry) RevokeTenantToken(ctx context.Context, tenant string) error {
	acl := r.client.ACL()
	name := r.TenantPolicyName(tenant)
	pol, _, err := acl.PolicyReadByName(name, qopts(ctx))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("revoke token of %s: read policy: %w", tenant, aclError(err))
	}
	if pol == nil {
		return nil
	}
	toks, _, err := acl.TokenListFiltered(api.ACLTokenFilterOptions{Policy: pol.ID}, qopts(ctx))
	if err != nil {
		return fmt.Errorf("revoke token of %s: list tokens: %w", tenant, aclError(err))
	}
	for _, t := range toks {
		if _, err := acl.TokenDelete(t.AccessorID, wopts(ctx)); err != nil {
			return fmt.Errorf("revoke token of %s: delete token: %w", tenant, aclError(err))
		}
	}
	if _, err := acl.PolicyDelete(pol.ID, wopts(ctx)); err != nil {
		return fmt.Errorf("revoke token of %s: delete policy: %w", tenant, aclError(err))
	}
	r.log.Info("tenant token revoked", "tenant", tenant, "tokens", len(toks))
	return nil
}

// ProxyToken creates a read-only token for proxies (ProxyRules) under the
// policy ServicePrefix+"_proxies" (an underscore, so no tenant's policy can
// have that name) and returns its SecretID.
func (r *Registry) ProxyToken(ctx context.Context, proxyService string) (string, error) {
	acl := r.client.ACL()
	name := r.cfg.ServicePrefix + "_proxies"
	rules := r.ProxyRules(proxyService)
	pol, _, err := acl.PolicyReadByName(name, qopts(ctx))
	if err != nil && !isNotFound(err) {
		return "", fmt.Errorf("proxy policy: read: %w", aclError(err))
	}
	if pol == nil {
		if pol, _, err = acl.PolicyCreate(&api.ACLPolicy{Name: name, Description: "campus: proxies read the registry", Rules: rules}, wopts(ctx)); err != nil {
			return "", fmt.Errorf("proxy policy: create: %w", aclError(err))
		}
	} else if pol.Rules != rules {
		pol.Rules = rules
		if pol, _, err = acl.PolicyUpdate(pol, wopts(ctx)); err != nil {
			return "", fmt.Errorf("proxy policy: update: %w", aclError(err))
		}
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{Description: "campus proxy", Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, wopts(ctx))
	if err != nil {
		return "", fmt.Errorf("proxy token: create: %w", aclError(err))
	}
	return tok.SecretID, nil
}

func isNotFound(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	return err != nil && (strings.Contains(err.Error(), "ACL not found") || strings.Contains(err.Error(), "Unexpected response code: 404"))
}
