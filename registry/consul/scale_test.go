package consul_test

import (
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// TestACLWakeOnlyByProxy (issue 12): on an agent with ACLs, a proxy's
// token may write the wake signal and nothing else of the registry; a
// tenant's token can neither wake nor stop another tenant (nor wake
// itself: only proxies ask), and a reader token cannot wake anything.
func TestACLWakeOnlyByProxy(t *testing.T) {
	sp, op := aclSpace(t)
	ctx := ctxT(t, time.Minute)
	for _, n := range []string{"nairobi", "accra"} {
		if _, err := op.CreateTenant(ctx, tenant(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	accraToken, err := op.TenantToken(ctx, "accra", false)
	if err != nil {
		t.Fatal(err)
	}
	accraIn := registry.Instance{ID: "accra-1", Tenant: "accra", Addr: "127.0.0.1:8"}
	if err := sp.as(t, accraToken).RegisterInstance(ctx, accraIn); err != nil {
		t.Fatal(err)
	}
	nairobiToken, err := op.TenantToken(ctx, "nairobi", false)
	if err != nil {
		t.Fatal(err)
	}
	nairobi := sp.as(t, nairobiToken)
	_, cursor, err := op.WatchWakes(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, target := range []string{"accra", "nairobi"} {
		if err := nairobi.RequestWake(ctx, target); !denied(err) {
			t.Errorf("nairobi's token waking %s: %v, want permission denied", target, err)
		}
	}
	if err := nairobi.DeregisterInstance(ctx, accraIn.ID); !denied(err) {
		t.Errorf("nairobi's token stopping accra's instance: %v, want permission denied", err)
	}
	if _, err := nairobi.SetIdleTimeout(ctx, "accra", "1s"); !denied(err) {
		t.Errorf("nairobi's token setting accra's idle timeout: %v, want permission denied", err)
	}
	reader, err := op.ProxyToken(ctx, "campus-proxy", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.as(t, reader).RequestWake(ctx, "accra"); !denied(err) {
		t.Errorf("a reader token waking accra: %v, want permission denied", err)
	}

	proxyToken, err := op.ProxyToken(ctx, "campus-proxy", true, "")
	if err != nil {
		t.Fatal(err)
	}
	proxy := sp.as(t, proxyToken)
	if err := proxy.RequestWake(ctx, "accra"); err != nil {
		t.Fatalf("the proxy's token waking accra: %v", err)
	}
	if _, err := proxy.SetIdleTimeout(ctx, "accra", "0"); !denied(err) {
		t.Errorf("the proxy's token setting an idle timeout: %v, want permission denied", err)
	}
	if err := proxy.DeregisterInstance(ctx, accraIn.ID); !denied(err) {
		t.Errorf("the proxy's token stopping accra's instance: %v, want permission denied", err)
	}
	wakes, _, err := op.WatchWakes(ctx, cursor)
	if err != nil || len(wakes) != 1 || wakes[0].Tenant != "accra" {
		t.Fatalf("wakes seen by the operator: %+v, %v; want accra's only (the refused ones wrote nothing)", wakes, err)
	}
}
