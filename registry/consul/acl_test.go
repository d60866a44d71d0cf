package consul_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// aclSpace is a space on the ACL agent (default deny) with an operator
// Registry on the management token.
func aclSpace(t *testing.T) (space, *consul.Registry) {
	t.Helper()
	a := aclAgent.Get(t)
	sp := newSpace(t, a, a.Token)
	return sp, mustNew(t, sp.config())
}

// as returns a Registry of the space that uses token instead.
func (sp space) as(t *testing.T, token string) *consul.Registry {
	t.Helper()
	sp.token = token
	return mustNew(t, sp.config())
}

func denied(err error) bool {
	if errors.Is(err, consul.ErrPermissionDenied) {
		return true
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusForbidden
	}
	return err != nil && strings.Contains(err.Error(), "Permission denied")
}

// TestACLTenantTokenRegistersOnlyItsTenant tries every crossing a school's
// own token could attempt on a real agent with ACLs: another school's
// service, another school's or its own registry keys, and a claim in
// service meta. Each is refused by Consul or ignored by the registry.
func TestACLTenantTokenRegistersOnlyItsTenant(t *testing.T) {
	sp, op := aclSpace(t)
	ctx := ctxT(t, time.Minute)
	for _, n := range []string{"nairobi", "accra"} {
		if _, err := op.CreateTenant(ctx, tenant(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	nairobiToken, err := op.TenantToken(ctx, "nairobi", false)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := op.TenantToken(ctx, "nairobi", false); err != nil || again != nairobiToken {
		t.Fatalf("TenantToken again = %v; want the same token", err)
	}
	nairobi := sp.as(t, nairobiToken)

	// Another school's service: refused by Consul.
	err = nairobi.RegisterInstance(ctx, registry.Instance{ID: "evil-1", Tenant: "accra", Addr: "127.0.0.1:7"})
	if !denied(err) {
		t.Fatalf("nairobi's token registering an accra instance: %v, want permission denied", err)
	}
	// Its own service: allowed.
	if err := nairobi.RegisterInstance(ctx, registry.Instance{ID: "nairobi-1", Tenant: "nairobi", Addr: "127.0.0.1:8"}); err != nil {
		t.Fatalf("nairobi's token registering a nairobi instance: %v", err)
	}
	// Its own service, claiming accra in meta and tags: it stays nairobi's.
	c := sp.agent.Client(nairobiToken)
	err = c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "nairobi-liar", Name: nairobi.ServiceName("nairobi"), Address: "127.0.0.1", Port: 9,
		Tags: []string{consul.ServiceTag, "tenant-accra"}, Meta: map[string]string{consul.MetaTenant: "accra"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The registry keys: not writable, another school's not readable.
	if _, err := c.KV().Put(&api.KVPair{Key: sp.prefix + "tenants/accra", Value: []byte(`{}`)}, nil); !denied(err) {
		t.Errorf("nairobi's token writing accra's tenant key: %v, want permission denied", err)
	}
	if _, err := c.KV().Put(&api.KVPair{Key: sp.prefix + "hosts/accra.school.localhost", Value: []byte("nairobi")}, nil); !denied(err) {
		t.Errorf("nairobi's token taking accra's host: %v, want permission denied", err)
	}
	if _, err := nairobi.CreateTenant(ctx, tenant(t, "lagos")); !denied(err) {
		t.Errorf("nairobi's token creating a tenant: %v, want permission denied", err)
	}
	if p, _, err := c.KV().Get(sp.prefix+"tenants/accra", nil); p != nil || (err != nil && !denied(err)) {
		t.Errorf("nairobi's token read accra's tenant key: %v, %v", p, err)
	}
	if got, err := nairobi.Tenant(ctx, "nairobi"); err != nil || got.Name != "nairobi" {
		t.Errorf("nairobi's token reading its own tenant: %+v, %v", got, err)
	}
	// Anonymous: nothing.
	anon := sp.as(t, "")
	if err := anon.RegisterInstance(ctx, registry.Instance{ID: "anon-1", Tenant: "accra", Addr: "127.0.0.1:7"}); !denied(err) {
		t.Errorf("anonymous registration: %v, want permission denied", err)
	}

	// What a proxy sees, with its read-only token: both nairobi
	// instances are nairobi's, accra has none.
	proxyToken, err := op.ProxyToken(ctx, "campus-proxy", true, "")
	if err != nil {
		t.Fatal(err)
	}
	proxy := sp.as(t, proxyToken)
	snap := waitSnap(t, proxy, "nairobi's two instances", func(s registry.Snapshot) bool { return len(s.Instances) >= 2 })
	var tenants []string
	for _, in := range snap.Instances {
		tenants = append(tenants, in.Tenant)
	}
	if !slices.Equal(tenants, []string{"nairobi", "nairobi"}) || len(snap.Tenants) != 2 {
		t.Fatalf("the proxy's snapshot: instances of %v (want nairobi twice), %d tenants", tenants, len(snap.Tenants))
	}
	// The proxy's token writes nothing of the registry.
	if err := proxy.RegisterInstance(ctx, registry.Instance{ID: "p-1", Tenant: "accra", Addr: "127.0.0.1:7"}); !denied(err) {
		t.Errorf("the proxy's token registering an app instance: %v, want permission denied", err)
	}
	if _, err := proxy.SetState(ctx, "accra", registry.StateSuspended); !denied(err) {
		t.Errorf("the proxy's token suspending a tenant: %v, want permission denied", err)
	}
	if _, err := proxy.AddHost(ctx, "accra", "records.accra.test"); !denied(err) {
		t.Errorf("the proxy's token adding a host: %v, want permission denied", err)
	}
	// It reads neither the operator tokens nor the audit trail (issue 26).
	pc := sp.agent.Client(proxyToken)
	_, rec, _ := registry.NewOperatorToken("alice", false)
	if _, err := op.CreateOperatorToken(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := op.AppendAudit(ctx, registry.AuditEntry{Operator: "alice", Action: "schools.list", Outcome: registry.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.OperatorToken(ctx, rec.ID); !denied(err) {
		t.Errorf("the proxy's token reading an operator token: %v, want permission denied", err)
	}
	for _, prefix := range []string{sp.prefix + "operators/", sp.prefix + "audit/"} {
		if pairs, _, err := pc.KV().List(prefix, nil); err == nil && len(pairs) > 0 {
			t.Errorf("the proxy's token lists %d keys under %s", len(pairs), prefix)
		}
	}
	// It writes the shared certificate store (HTTPS), and only that.
	if _, err := pc.KV().Put(&api.KVPair{Key: op.CertsPrefix() + "/certificates/x.crt", Value: []byte("pem")}, nil); err != nil {
		t.Errorf("the proxy's token writing the certificate store: %v", err)
	}
	if _, err := pc.KV().Put(&api.KVPair{Key: sp.prefix + "hosts/records.accra.test", Value: []byte("nairobi")}, nil); !denied(err) {
		t.Errorf("the proxy's token writing a host key: %v, want permission denied", err)
	}
}

// TestACLRotateAndRevoke: a rotated token replaces the old one at once; a
// revoked tenant's token registers nothing, not even its own service.
func TestACLRotateAndRevoke(t *testing.T) {
	sp, op := aclSpace(t)
	ctx := ctxT(t, time.Minute)
	if _, err := op.CreateTenant(ctx, tenant(t, "lagos")); err != nil {
		t.Fatal(err)
	}
	old, err := op.TenantToken(ctx, "lagos", false)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := op.TenantToken(ctx, "lagos", true)
	if err != nil || rotated == old {
		t.Fatalf("rotate: %v (same token: %v)", err, rotated == old)
	}
	in := registry.Instance{ID: "lagos-1", Tenant: "lagos", Addr: "127.0.0.1:8"}
	if err := sp.as(t, old).RegisterInstance(ctx, in); err == nil {
		t.Error("the token replaced by a rotation still registers")
	}
	if err := sp.as(t, rotated).RegisterInstance(ctx, in); err != nil {
		t.Errorf("the rotated token: %v", err)
	}
	if err := op.RevokeTenantToken(ctx, "lagos"); err != nil {
		t.Fatal(err)
	}
	if err := op.RevokeTenantToken(ctx, "lagos"); err != nil {
		t.Fatalf("revoking again: %v, want no error", err)
	}
	if err := sp.as(t, rotated).RegisterInstance(ctx, registry.Instance{ID: "lagos-2", Tenant: "lagos", Addr: "127.0.0.1:9"}); err == nil {
		t.Error("a revoked tenant's token still registers")
	}
	// A new token for a re-created name is a new credential: the revoked
	// one stays dead.
	fresh, err := op.TenantToken(ctx, "lagos", false)
	if err != nil || fresh == rotated || fresh == old {
		t.Fatalf("token after revoke: %v (re-used: %v)", err, fresh == rotated || fresh == old)
	}
}

// TestACLSetTenantToken: a deployment-chosen secret becomes the tenant's
// one token, again and again without change; a malformed one is refused.
func TestACLSetTenantToken(t *testing.T) {
	sp, op := aclSpace(t)
	ctx := ctxT(t, time.Minute)
	if _, err := op.CreateTenant(ctx, tenant(t, "kumasi")); err != nil {
		t.Fatal(err)
	}
	random, err := op.TenantToken(ctx, "kumasi", false)
	if err != nil {
		t.Fatal(err)
	}
	const chosen = "0f2c3a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
	for range 2 {
		if err := op.SetTenantToken(ctx, "kumasi", chosen); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := op.TenantToken(ctx, "kumasi", false); err != nil || got != chosen {
		t.Fatalf("TenantToken after SetTenantToken = %q, %v; want the chosen secret", got, err)
	}
	in := registry.Instance{ID: "kumasi-1", Tenant: "kumasi", Addr: "127.0.0.1:8"}
	if err := sp.as(t, random).RegisterInstance(ctx, in); err == nil {
		t.Error("the replaced random token still registers")
	}
	if err := sp.as(t, chosen).RegisterInstance(ctx, in); err != nil {
		t.Errorf("the chosen token: %v", err)
	}
	if err := op.SetTenantToken(ctx, "kumasi", "not-a-uuid"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("SetTenantToken(not-a-uuid) = %v, want ErrInvalid", err)
	}
	// A reader token reads and registers nothing.
	reader, err := op.ProxyToken(ctx, "campus-proxy", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.as(t, reader).RegisterInstance(ctx, registry.Instance{ID: "r-1", Tenant: "kumasi", Addr: "127.0.0.1:9"}); !denied(err) {
		t.Errorf("a reader token registering: %v, want permission denied", err)
	}
	waitSnap(t, sp.as(t, reader), "kumasi's instance seen by a reader", func(s registry.Snapshot) bool { return len(s.Instances) == 1 })
}

// TestACLDisabled: the token functions say so on an agent without ACLs.
func TestACLDisabled(t *testing.T) {
	a := ownAgent(t, true) // not the shared one, which may be an external agent with ACLs
	_, r, _ := newOn(t, newSpace(t, a, ""))
	if _, err := r.TenantToken(context.Background(), "x", false); !errors.Is(err, consul.ErrACLDisabled) {
		t.Fatalf("TenantToken without ACLs = %v, want ErrACLDisabled", err)
	}
}
