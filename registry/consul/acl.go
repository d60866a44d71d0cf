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

// ProxyRules are the ACL rules of a proxy's token (write true): it reads
// the tenants (and the host keys), the node list, every check and the app
// services, and writes nothing but its own service registration,
// proxyService. With write false, the rules of a read-only token for
// Prometheus: the same reads, proxyService read, and the agent (whose
// datacenter Prometheus's Consul discovery asks for).
func (r *Registry) ProxyRules(proxyService string, write bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"read\"\n}\n", r.cfg.Prefix)
	// Operator tokens and the audit trail (issue 26) are the control
	// server's: neither proxies nor Prometheus read them (the longer
	// prefix wins over the read above).
	fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"deny\"\n}\n", r.operatorsPrefix())
	fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"deny\"\n}\n", r.auditPrefix())
	fmt.Fprintf(&b, "node_prefix \"\" {\n  policy = \"read\"\n}\n")
	fmt.Fprintf(&b, "service_prefix %q {\n  policy = \"read\"\n}\n", r.cfg.ServicePrefix)
	if write {
		fmt.Fprintf(&b, "service %q {\n  policy = \"write\"\n}\n", proxyService)
		// HTTPS (issue 14): the shared certificate store and its locks
		// (certs.ConsulStorage under CertsPrefix), nothing else of KV.
		fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"write\"\n}\n", r.CertsPrefix())
		fmt.Fprintf(&b, "session_prefix \"\" {\n  policy = \"write\"\n}\n")
		// Scale to zero (issue 12): a proxy asks for a tenant to be woken
		// by writing <prefix>wake/<tenant>; the supervisor trusts only the
		// tenant's record, so this key grants no more than a request would.
		fmt.Fprintf(&b, "key_prefix %q {\n  policy = \"write\"\n}\n", r.wakePrefix())
	} else {
		fmt.Fprintf(&b, "service %q {\n  policy = \"read\"\n}\n", proxyService)
		fmt.Fprintf(&b, "agent_prefix \"\" {\n  policy = \"read\"\n}\n")
	}
	return b.String()
}

// CertsPrefix is where proxies keep TLS certificates in KV
// (certs.ConsulStorage; its locks under CertsPrefix()+"-locks/"): beside
// the registry's keys, never under tenants/ or hosts/.
func (r *Registry) CertsPrefix() string { return r.cfg.Prefix + "certs" }

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
	return r.tenantToken(ctx, tenant, rotate, "")
}

// SetTenantToken makes secretID (a UUID chosen by the deployment, e.g. a
// Docker secret) tenant's one token, creating it when missing and revoking
// any other token of the tenant. Running it again changes nothing.
func (r *Registry) SetTenantToken(ctx context.Context, tenant, secretID string) error {
	if err := validSecretID(secretID); err != nil {
		return fmt.Errorf("tenant token of %s: %w", tenant, err)
	}
	_, err := r.tenantToken(ctx, tenant, false, secretID)
	return err
}

func (r *Registry) tenantToken(ctx context.Context, tenant string, rotate bool, secretID string) (string, error) {
	if err := registry.ValidateName(tenant); err != nil {
		return "", fmt.Errorf("tenant token: %w", err)
	}
	acl := r.client.ACL()
	w := wopts(ctx)
	pol, err := r.ensurePolicy(ctx, r.TenantPolicyName(tenant),
		"campus: register only the app service of tenant "+tenant, r.TenantRules(tenant))
	if err != nil {
		return "", err
	}
	existing, _, err := acl.TokenListFiltered(api.ACLTokenFilterOptions{Policy: pol.ID}, qopts(ctx))
	if err != nil {
		return "", fmt.Errorf("tenant token of %s: list tokens: %w", tenant, aclError(err))
	}
	var keep string // AccessorID of the token that stays
	if !rotate {
		for _, e := range existing {
			tok, _, err := acl.TokenRead(e.AccessorID, qopts(ctx))
			if err != nil {
				return "", fmt.Errorf("tenant token of %s: read token: %w", tenant, aclError(err))
			}
			if secretID == "" {
				return tok.SecretID, nil // the one it has
			}
			if tok.SecretID == secretID {
				keep = tok.AccessorID
			}
		}
	}
	secret := secretID
	if keep == "" {
		tok, _, err := acl.TokenCreate(&api.ACLToken{
			SecretID:    secretID, // empty: Consul chooses
			Description: tenantTokenDescription(tenant),
			Policies:    []*api.ACLTokenPolicyLink{{ID: pol.ID}},
		}, w)
		if err != nil {
			return "", fmt.Errorf("tenant token of %s: create token: %w", tenant, aclError(err))
		}
		keep, secret = tok.AccessorID, tok.SecretID
		r.log.Info("tenant token issued", "tenant", tenant, "accessor", tok.AccessorID, "rotated", rotate && len(existing) > 0)
	}
	for _, e := range existing {
		if e.AccessorID == keep {
			continue
		}
		if _, err := acl.TokenDelete(e.AccessorID, w); err != nil {
			return "", fmt.Errorf("tenant token of %s: revoke the old token: %w", tenant, aclError(err))
		}
	}
	return secret, nil
}

// validSecretID: Consul takes only UUIDs as secret IDs.
func validSecretID(s string) error {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return invalid("secret", "a Consul token secret is a UUID (8-4-4-4-12 hex digits)")
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return invalid("secret", "a Consul token secret is a UUID (8-4-4-4-12 hex digits)")
		}
	}
	return nil
}

// ensurePolicy reads the policy name, creating it when missing and
// correcting its rules when they differ (an old prefix, a hand edit).
func (r *Registry) ensurePolicy(ctx context.Context, name, desc, rules string) (*api.ACLPolicy, error) {
	acl := r.client.ACL()
	pol, _, err := acl.PolicyReadByName(name, qopts(ctx))
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("policy %s: read: %w", name, aclError(err))
	}
	if pol == nil {
		if pol, _, err = acl.PolicyCreate(&api.ACLPolicy{Name: name, Description: desc, Rules: rules}, wopts(ctx)); err != nil {
			return nil, fmt.Errorf("policy %s: create: %w", name, aclError(err))
		}
		return pol, nil
	}
	if pol.Rules != rules {
		pol.Rules = rules
		if pol, _, err = acl.PolicyUpdate(pol, wopts(ctx)); err != nil {
			return nil, fmt.Errorf("policy %s: update rules: %w", name, aclError(err))
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

// ProxyToken returns the SecretID of a token for proxies (ProxyRules with
// write: read the registry, register proxyService) under the policy
// ServicePrefix+"_proxies", or without write a read-only token
// (Prometheus's) under ServicePrefix+"_readers". Policy names have an
// underscore, so no tenant's policy can take one. With secretID (a UUID
// chosen by the deployment), that token is created once and reused.
func (r *Registry) ProxyToken(ctx context.Context, proxyService string, write bool, secretID string) (string, error) {
	acl := r.client.ACL()
	name, desc := r.cfg.ServicePrefix+"_proxies", "campus: proxies read the registry"
	if !write {
		name, desc = r.cfg.ServicePrefix+"_readers", "campus: read the registry (Prometheus)"
	}
	if secretID != "" {
		if err := validSecretID(secretID); err != nil {
			return "", fmt.Errorf("%s token: %w", name, err)
		}
	}
	pol, err := r.ensurePolicy(ctx, name, desc, r.ProxyRules(proxyService, write))
	if err != nil {
		return "", err
	}
	if secretID != "" {
		if self, _, err := acl.TokenReadSelf(&api.QueryOptions{Token: secretID}); err == nil && self != nil {
			for _, l := range self.Policies {
				if l.ID == pol.ID {
					return secretID, nil
				}
			}
			return "", fmt.Errorf("%s token: that secret is already a token with other policies; choose another", name)
		}
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{SecretID: secretID, Description: desc, Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, wopts(ctx))
	if err != nil {
		return "", fmt.Errorf("%s token: create: %w", name, aclError(err))
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
