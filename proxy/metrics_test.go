package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

func TestRequestMetrics(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	for _, host := range []string{
		"nairobi.school.localhost", "NAIROBI.school.localhost:8000", "accra.school.localhost",
		"nope.school.localhost", "evil.example", "127.0.0.1", // unknown: 404
		"bad_host.localhost", "a..b", // malformed: 400
	} {
		tp.do(t, request{host: host})
	}
	tp.do(t, request{host: "accra.school.localhost", path: "/metrics"})
	// Hosts net/http clients refuse to send, straight to the handler.
	for _, host := range []string{"", "<x>"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		tp.ServeHTTP(httptest.NewRecorder(), r)
	}

	want := `
# HELP campus_proxy_requests_total Requests answered by the proxy, by tenant and HTTP status (499: client went away).
# TYPE campus_proxy_requests_total counter
campus_proxy_requests_total{code="200",tenant="accra"} 1
campus_proxy_requests_total{code="404",tenant="accra"} 1
campus_proxy_requests_total{code="200",tenant="nairobi"} 2
campus_proxy_requests_total{code="404",tenant="_unknown"} 3
campus_proxy_requests_total{code="400",tenant="_unknown"} 4
`
	if err := testutil.CollectAndCompare(tp.metrics.requests, strings.NewReader(want), MetricRequests); err != nil {
		t.Error(err)
	}
	wantGauges := `
# HELP campus_proxy_routes Host names in the current routing table.
# TYPE campus_proxy_routes gauge
campus_proxy_routes 4
# HELP campus_proxy_tenant_instances Healthy app instances per tenant in the current routing table.
# TYPE campus_proxy_tenant_instances gauge
campus_proxy_tenant_instances{tenant="accra"} 1
campus_proxy_tenant_instances{tenant="default"} 1
campus_proxy_tenant_instances{tenant="nairobi"} 1
# HELP campus_proxy_in_flight Requests being handled by the proxy, including held ones.
# TYPE campus_proxy_in_flight gauge
campus_proxy_in_flight 0
# HELP campus_proxy_table_updates_total Routing tables published (unchanged snapshots are not counted).
# TYPE campus_proxy_table_updates_total counter
campus_proxy_table_updates_total 1
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(wantGauges),
		MetricRoutes, MetricTenantInstances, MetricInFlight, MetricTableUpdates); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(tp.metrics.duration, MetricRequestDuration); got != 4 {
		t.Errorf("%s has %d children, want 4 (three tenants and _unknown)", MetricRequestDuration, got)
	}
	if ts := testutil.ToFloat64(tp.metrics.tableLastUpdate); ts <= 0 {
		t.Errorf("%s = %v", MetricTableLastUpdate, ts)
	}
}

// TestUnknownHostsShareOneLabel: whatever hosts clients send, the tenant
// label only ever holds registered names and _unknown.
func TestUnknownHostsShareOneLabel(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	for i := range 50 {
		tp.do(t, request{host: strings.Repeat("x", i%7+1) + ".random" + string(rune('a'+i%26)) + ".example"})
	}
	families, err := tp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"default": true, "nairobi": true, "accra": true, UnknownTenant: true}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == LabelTenant && !allowed[l.GetValue()] {
					t.Errorf("%s has tenant label %q", f.GetName(), l.GetValue())
				}
			}
		}
	}
	if got := testutil.ToFloat64(tp.metrics.requests.WithLabelValues(UnknownTenant, "404")); got != 50 {
		t.Errorf("unknown-host 404s = %v, want 50", got)
	}
}

func TestNewRejectsDuplicateRegistration(t *testing.T) {
	tp := newTestProxy(t, Config{})
	if _, err := New(Config{Registerer: tp.reg}); err == nil {
		t.Fatal("a second proxy on the same registry should fail to register its metrics")
	}
	p, err := New(Config{}) // private registry
	if err != nil {
		t.Fatal(err)
	}
	p.Update(registry.Snapshot{Version: 1})
}

// TestRequestCountersAfterTenantReturns: a tenant's request counters
// (kept at hand per tenant) go with it when it leaves the table; when it
// comes back, its requests are counted in a visible series again, and
// never in another tenant's.
func TestRequestCountersAfterTenantReturns(t *testing.T) {
	a, b := newUpstream(t, "nairobi", "n1"), newUpstream(t, "accra", "a1")
	tp := newTestProxy(t, Config{})
	both := registry.Snapshot{Version: 1,
		Tenants: []registry.Tenant{tenant(t, "nairobi", "N", "nairobi.school.localhost"),
			tenant(t, "accra", "A", "accra.school.localhost")},
		Instances: []registry.Instance{a.instance(), b.instance()}}
	tp.Update(both)
	tp.do(t, request{host: "nairobi.school.localhost"})
	tp.do(t, request{host: "accra.school.localhost"})
	onlyAccra := both
	onlyAccra.Version, onlyAccra.Tenants, onlyAccra.Instances = 2, both.Tenants[1:], both.Instances[1:]
	tp.Update(onlyAccra)
	back := both
	back.Version = 3
	tp.Update(back)
	tp.do(t, request{host: "nairobi.school.localhost"})
	tp.do(t, request{host: "accra.school.localhost"})
	want := `
# HELP campus_proxy_requests_total Requests answered by the proxy, by tenant and HTTP status (499: client went away).
# TYPE campus_proxy_requests_total counter
campus_proxy_requests_total{code="200",tenant="accra"} 2
campus_proxy_requests_total{code="200",tenant="nairobi"} 1
`
	if err := testutil.CollectAndCompare(tp.metrics.requests, strings.NewReader(want), MetricRequests); err != nil {
		t.Error(err)
	}
}
