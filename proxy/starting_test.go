package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Before the first table arrives from the registry no host is known to be
// unknown: a request waits for the table instead of getting a 404, and gets
// a 503 with Retry-After if none comes in time.
func TestBeforeFirstTable(t *testing.T) {
	t.Run("waits for the first table", func(t *testing.T) {
		tp := newTestProxy(t, Config{HoldTimeout: 5 * time.Second})
		up := newUpstream(t, "nairobi", "n1")
		tn, err := registry.NewTenant("nairobi", []string{"nairobi.school.localhost"}, "")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{tn},
				Instances: []registry.Instance{{ID: "n1", Tenant: "nairobi", Addr: up.addr(), Healthy: true}}})
		}()
		if r := tp.do(t, request{host: "nairobi.school.localhost"}); r.status != http.StatusOK {
			t.Fatalf("status %d, want 200 once the first table arrived: %s", r.status, r.body)
		}
	})
	t.Run("503, not 404, when no table comes", func(t *testing.T) {
		tp := newTestProxy(t, Config{HoldTimeout: 50 * time.Millisecond})
		r := tp.do(t, request{host: "nairobi.school.localhost"})
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
	})
}
