package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

// threeSchools is the dev fleet: default, nairobi (with an alias), accra.
func threeSchools(t *testing.T, tp *testProxy) (def, nairobi, accra *upstream) {
	t.Helper()
	def = newUpstream(t, "default", "default-1")
	nairobi = newUpstream(t, "nairobi", "nairobi-1")
	accra = newUpstream(t, "accra", "accra-1")
	tp.Update(registry.Snapshot{
		Version: 1,
		Tenants: []registry.Tenant{
			tenant(t, "accra", "Accra Academy", "accra.school.localhost"),
			tenant(t, "default", "Default School", "school.localhost"),
			tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost", "records.nairobi-high.example"),
		},
		Instances: []registry.Instance{accra.instance(), def.instance(), nairobi.instance()},
	})
	return def, nairobi, accra
}

func TestHostRouting(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	tests := []struct {
		host       string
		wantTenant string // "" when the proxy must answer itself
		wantStatus int
	}{
		{"nairobi.school.localhost", "nairobi", 200},
		{"Nairobi.School.LOCALHOST", "nairobi", 200},
		{"nairobi.school.localhost:8000", "nairobi", 200},
		{"nairobi.school.localhost.", "nairobi", 200},
		{"NAIROBI.school.localhost.:443", "nairobi", 200},
		{"records.nairobi-high.example", "nairobi", 200},
		{"accra.school.localhost", "accra", 200},
		{"school.localhost:8000", "default", 200},
		{"unknown.school.localhost", "", 404},
		{"nairobi.school.localhost.evil.example", "", 404},
		{"x.nairobi.school.localhost", "", 404},
		{"nairobi-school.localhost", "", 404},
		{"localhost", "", 404},
		{"127.0.0.1", "", 404},
		{"nairobi..school.localhost", "", 400},
		{"-nairobi.school.localhost", "", 400},
		{"nairobi.school.localhost:99999", "", 400},
		{"nairobi.school.localhost:", "", 400},
		{"nairobi_school.localhost", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			resp := tp.do(t, request{host: tt.host, path: "/students?page=2"})
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body:\n%s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantTenant == "" {
				assertNoTenantData(t, resp.body)
				return
			}
			e := resp.echo(t)
			if e.Tenant != tt.wantTenant || e.Header.Get(HeaderTenant) != tt.wantTenant {
				t.Fatalf("routed to %q with %s %q, want %q", e.Tenant, HeaderTenant, e.Header.Get(HeaderTenant), tt.wantTenant)
			}
			if e.Host != tt.host || e.Path != "/students" {
				t.Errorf("upstream saw Host %q path %q, want %q /students", e.Host, e.Path, tt.host)
			}
		})
	}
}

// TestBadHostHeaders sends hosts net/http clients refuse to send, straight
// to ServeHTTP.
func TestBadHostHeaders(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	for _, host := range []string{"", "<script>alert(1)</script>", "nairobi.school.localhost/x", "a b", "[::1", "ü.localhost", strings.Repeat("a", 400)} {
		t.Run(host, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = host
			w := httptest.NewRecorder()
			tp.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", w.Code)
			}
			if host != "" && strings.Contains(w.Body.String(), host) {
				t.Errorf("error page echoes the Host header:\n%s", w.Body)
			}
			assertNoTenantData(t, w.Body.String())
		})
	}
}

// assertNoTenantData fails if a proxy-made page mentions any test tenant.
func assertNoTenantData(t testing.TB, body string) {
	t.Helper()
	for _, s := range []string{"nairobi", "Nairobi", "accra", "Accra", "default", "Default", `"tenant"`, "instance"} {
		if strings.Contains(body, s) {
			t.Fatalf("response names %q:\n%s", s, body)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	tests := []struct {
		name   string
		header http.Header
		wantID string // "" means: any generated id
	}{
		{"clean request", http.Header{}, ""},
		{"spoofed forwarding and tenant headers", http.Header{
			"X-Forwarded-For":   {"6.6.6.6"},
			"X-Forwarded-Host":  {"accra.school.localhost"},
			"X-Forwarded-Proto": {"https"},
			"Forwarded":         {"for=6.6.6.6;host=accra.school.localhost"},
			"X-Real-Ip":         {"6.6.6.6"},
			"X-Campus-Tenant":   {"accra", "default"},
			"X_campus_tenant":   {"accra"},
			"X-Request-Id":      {"trace-123:abc"},
		}, "trace-123:abc"},
		// The app counts login failures by the X-Forwarded-For it gets:
		// no client-sent value, list or spelling may reach it.
		{"spoofed X-Forwarded-For lists and spellings", http.Header{
			"X-Forwarded-For": {"6.6.6.6, 7.7.7.7", "8.8.8.8"},
			"X_Forwarded_For": {"6.6.6.6"},
			"X-Forwarded_For": {"6.6.6.6"},
		}, ""},
		{"unusable request id is replaced", http.Header{"X-Request-Id": {"has spaces and <tags>"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tp.do(t, request{host: "Nairobi.school.localhost:8000", header: tt.header})
			e := resp.echo(t)
			h := e.Header
			want := map[string][]string{
				"X-Campus-Tenant":   {"nairobi"},
				"X-Forwarded-For":   {"127.0.0.1"},
				"X-Forwarded-Host":  {"Nairobi.school.localhost:8000"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         nil,
				"X-Real-Ip":         nil,
				"X_campus_tenant":   nil,
				"X_forwarded_for":   nil,
				"X-Forwarded_for":   nil,
			}
			for k, v := range want {
				if got := h.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("upstream saw %s: %q, want %q", k, got, v)
				}
			}
			if e.Host != "Nairobi.school.localhost:8000" {
				t.Errorf("upstream saw Host %q", e.Host)
			}
			id := h.Get(HeaderRequestID)
			switch {
			case tt.wantID != "" && id != tt.wantID:
				t.Errorf("request id = %q, want the client's %q", id, tt.wantID)
			case tt.wantID == "" && (len(id) < 16 || strings.ContainsAny(id, " <>")):
				t.Errorf("request id = %q, want a generated one", id)
			}
		})
	}
}

func TestInternalPathsNotForwarded(t *testing.T) {
	tp := newTestProxy(t, Config{})
	_, nairobi, _ := threeSchools(t, tp)
	for _, path := range []string{"/metrics", "/metrics/", "/metrics?x=1", "//metrics", "/./metrics", "/a/../metrics", "/%6Detrics", "/metrics/anything"} {
		t.Run(path, func(t *testing.T) {
			before := nairobi.hits.Load()
			resp := tp.do(t, request{host: "nairobi.school.localhost", path: path})
			if resp.status != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", resp.status)
			}
			if nairobi.hits.Load() != before {
				t.Fatal("request reached the app")
			}
		})
	}
	if resp := tp.do(t, request{host: "nairobi.school.localhost", path: "/metricsx"}); resp.status != 200 {
		t.Errorf("/metricsx: status %d, want it forwarded", resp.status)
	}
}

func TestDialErrorFailover(t *testing.T) {
	tp := newTestProxy(t, Config{})
	live := newUpstream(t, "nairobi", "live")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants: []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{
			{ID: "dead", Tenant: "nairobi", Addr: deadAddr(t), Healthy: true},
			live.instance(),
		}})
	// Round-robin tie-breaking sends one of the first two requests to the
	// dead instance first; every request must still arrive, body intact.
	for i, rq := range []request{
		{method: http.MethodPost, body: "name=Amina&grade=7"},
		{method: http.MethodPost, body: "name=Kofi&grade=8"},
		{method: http.MethodPost, body: "chunked=yes", chunked: true},
		{method: http.MethodPut, body: "x=1"},
		{method: http.MethodGet},
	} {
		want := rq.body
		rq.host = "nairobi.school.localhost"
		resp := tp.do(t, rq)
		if resp.status != 200 {
			t.Fatalf("request %d: status %d:\n%s", i, resp.status, resp.body)
		}
		if e := resp.echo(t); e.Instance != "live" || e.Body != want {
			t.Fatalf("request %d: reached %q with body %q, want live with %q", i, e.Instance, e.Body, want)
		}
	}
	if got := testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", ReasonDial)); got < 1 {
		t.Errorf("dial errors = %v, want >= 1", got)
	}
	rt := tp.table.Load().routes["nairobi.school.localhost"]
	for _, in := range rt.pool {
		if in.id == "dead" && !in.down(time.Now().UnixNano()) {
			t.Error("dead instance is not marked as recently failed")
		}
	}
}

// TestNoRetryAfterBodyRead: an app that read a POST and then died may have
// acted on it; the proxy must not send it to another instance. A GET
// without body is safe to retry.
func TestNoRetryAfterBodyRead(t *testing.T) {
	tp := newTestProxy(t, Config{})
	die := func(w http.ResponseWriter, r *http.Request, _ []byte) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	a := newUpstreamFunc(t, "nairobi", "a", die)
	b := newUpstreamFunc(t, "nairobi", "b", die)
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{a.instance(), b.instance()}})

	tests := []struct {
		name     string
		rq       request
		wantHits int64
	}{
		{"POST is sent once", request{method: http.MethodPost, body: "pay=100"}, 1},
		{"POST without body is sent once", request{method: http.MethodPost}, 1},
		{"GET is tried on each instance", request{method: http.MethodGet}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.hits.Load() + b.hits.Load()
			tt.rq.host = "nairobi.school.localhost"
			resp := tp.do(t, tt.rq)
			if resp.status != http.StatusBadGateway {
				t.Fatalf("status = %d, want 502", resp.status)
			}
			if hits := a.hits.Load() + b.hits.Load() - before; hits != tt.wantHits {
				t.Fatalf("upstream hits = %d, want %d", hits, tt.wantHits)
			}
		})
	}
}

func TestUpstreamTimeout(t *testing.T) {
	tp := newTestProxy(t, Config{UpstreamTimeout: 100 * time.Millisecond})
	slow := newUpstreamFunc(t, "nairobi", "slow", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		<-r.Context().Done() // until the proxy gives up
	})
	slow2 := newUpstreamFunc(t, "nairobi", "slow2", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		<-r.Context().Done()
	})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{slow.instance(), slow2.instance()}})
	resp := tp.do(t, request{host: "nairobi.school.localhost", header: http.Header{"Accept": {"application/json"}}})
	if resp.status != http.StatusGatewayTimeout {
		t.Fatalf("status = %d, want 504", resp.status)
	}
	if hits := slow.hits.Load() + slow2.hits.Load(); hits != 1 {
		t.Errorf("upstream hits = %d, want 1 (a timeout is not retried)", hits)
	}
	if got := testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", ReasonTimeout)); got != 1 {
		t.Errorf("timeout errors = %v, want 1", got)
	}
}

func TestClientGoneIsRecorded499(t *testing.T) {
	// The app's request ends with the client's, not at the upstream
	// timeout (issue 25: a client that leaves at once must not hold an app
	// request).
	tp := newTestProxy(t, Config{UpstreamTimeout: 2 * time.Minute}) // longer than eventually waits
	arrived, appDone := make(chan struct{}), make(chan struct{})
	up := newUpstreamFunc(t, "nairobi", "n1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		close(arrived)
		<-r.Context().Done()
		close(appDone)
	})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := tp.send(ctx, request{host: "nairobi.school.localhost"})
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
	eventually(t, "a 499 to be recorded", func() bool {
		return testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", "499")) == 1
	})
	eventually(t, "the app's request to end", func() bool {
		select {
		case <-appDone:
			return true
		default:
			return false
		}
	})
}

func TestRequestBodyLimit(t *testing.T) {
	tp := newTestProxy(t, Config{MaxRequestBody: 16})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	big := strings.Repeat("x", 64)
	tests := []struct {
		name string
		rq   request
		want int
	}{
		{"small body passes", request{body: "ok"}, 200},
		{"declared length over the limit", request{body: big}, 413},
		{"chunked body over the limit", request{body: big, chunked: true}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rq.method, tt.rq.host = http.MethodPost, "nairobi.school.localhost"
			resp := tp.do(t, tt.rq)
			if resp.status != tt.want {
				t.Fatalf("status = %d, want %d:\n%s", resp.status, tt.want, resp.body)
			}
		})
	}
}

func TestSuspendedTenantMaintenance(t *testing.T) {
	waker := newRecordingWaker()
	tp := newTestProxy(t, Config{Waker: waker})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{suspended(tenant(t, "nairobi", "Nairobi <High>", "nairobi.school.localhost"))},
		Instances: []registry.Instance{up.instance()}})
	resp := tp.do(t, request{host: "nairobi.school.localhost"})
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.status, resp.header.Get("Retry-After"))
	}
	if !strings.Contains(resp.body, "maintenance") || !strings.Contains(resp.body, "Nairobi &lt;High&gt;") {
		t.Errorf("maintenance page should name the school, escaped:\n%s", resp.body)
	}
	if up.hits.Load() != 0 || len(waker.calls()) != 0 {
		t.Errorf("suspended tenant: app hits %d, wake calls %v; want none", up.hits.Load(), waker.calls())
	}
}

// TestDeletedAndCreatingTenantsAreUnknown: a tenant deleted with its data
// kept, or still being created, keeps its hosts in the registry, but the
// proxy answers them exactly like hosts of no school: 404, no name, no
// instance contacted, no wake-up.
func TestDeletedAndCreatingTenantsAreUnknown(t *testing.T) {
	waker := newRecordingWaker()
	tp := newTestProxy(t, Config{Waker: waker})
	up := newUpstream(t, "lagos", "l1")
	deleted := tenant(t, "lagos", "Lagos Secret School", "lagos.school.localhost")
	deleted.State, deleted.DeletedAt, deleted.PurgeAfter = registry.StateDeleted, time.Now(), time.Now().Add(time.Hour)
	creating := tenant(t, "kano", "Kano Secret School", "kano.school.localhost")
	creating.State = registry.StateCreating
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{creating, deleted}, Instances: []registry.Instance{up.instance()}})
	unknown := tp.do(t, request{host: "nobody.school.localhost"})
	for _, host := range []string{"lagos.school.localhost", "kano.school.localhost"} {
		resp := tp.do(t, request{host: host})
		if resp.status != http.StatusNotFound || !strings.Contains(resp.body, "School not found") || unknown.status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404 with the unknown-host page; body:\n%s", host, resp.status, resp.body)
		}
		assertNoTenantData(t, resp.body)
		if strings.Contains(resp.body, "Secret School") {
			t.Errorf("%s: the page names the school:\n%s", host, resp.body)
		}
	}
	if up.hits.Load() != 0 || len(waker.calls()) != 0 {
		t.Errorf("app hits %d, wake calls %v; want none", up.hits.Load(), waker.calls())
	}
	// Restored: routed again.
	deleted.State, deleted.DeletedAt, deleted.PurgeAfter = registry.StateActive, time.Time{}, time.Time{}
	tp.Update(registry.Snapshot{Version: 2, Tenants: []registry.Tenant{creating, deleted}, Instances: []registry.Instance{up.instance()}})
	if resp := tp.do(t, request{host: "lagos.school.localhost"}); resp.status != http.StatusOK {
		t.Fatalf("restored tenant: status %d, want 200", resp.status)
	}
}

func TestHoldTimesOutWith503(t *testing.T) {
	waker := newRecordingWaker()
	tp := newTestProxy(t, Config{HoldTimeout: 50 * time.Millisecond, Waker: waker})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants: []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{ // registered but failing its checks
			{ID: "sick", Tenant: "nairobi", Addr: deadAddr(t), Healthy: false}}})
	start := time.Now()
	resp := tp.do(t, request{host: "nairobi.school.localhost"})
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") != "5" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After 5", resp.status, resp.header.Get("Retry-After"))
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("answered after %v, before HoldTimeout", waited)
	}
	if got := <-waker.called; got != "nairobi" {
		t.Errorf("woke %q, want nairobi", got)
	}
	if got := testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", ReasonNoInstance)); got != 1 {
		t.Errorf("no_instance errors = %v, want 1", got)
	}
	// A second request right away does not wake the tenant again.
	tp.do(t, request{host: "nairobi.school.localhost"})
	if calls := waker.calls(); len(calls) != 1 {
		t.Errorf("wake calls = %v, want one per second at most", calls)
	}
}

func TestHeldRequestProceedsWhenInstanceAppears(t *testing.T) {
	waker := newRecordingWaker()
	tp := newTestProxy(t, Config{HoldTimeout: 30 * time.Second, Waker: waker})
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	accra := tenant(t, "accra", "Accra Academy", "accra.school.localhost")
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{accra, nairobi}})

	type result struct {
		resp response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tp.send(context.Background(), request{method: http.MethodPost, host: "nairobi.school.localhost",
			body: "held=1"})
		done <- result{resp, err}
	}()
	if got := <-waker.called; got != "nairobi" {
		t.Fatalf("woke %q, want nairobi", got)
	}
	// An unrelated change does not release the request...
	accraUp := newUpstream(t, "accra", "a1")
	tp.Update(registry.Snapshot{Version: 2, Tenants: []registry.Tenant{accra, nairobi},
		Instances: []registry.Instance{accraUp.instance()}})
	select {
	case r := <-done:
		t.Fatalf("request finished before its tenant had an instance: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	// ...the tenant's instance does.
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 3, Tenants: []registry.Tenant{accra, nairobi},
		Instances: []registry.Instance{accraUp.instance(), up.instance()}})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if e := r.resp.echo(t); e.Tenant != "nairobi" || e.Body != "held=1" {
		t.Fatalf("held request reached %q with body %q", e.Tenant, e.Body)
	}
}

func TestHeldRequestSeesSuspension(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: 30 * time.Second, Waker: newRecordingWaker()})
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{nairobi}})
	done := make(chan response, 1)
	go func() { done <- tp.do(t, request{host: "nairobi.school.localhost"}) }()
	<-tp.cfg.Waker.(*recordingWaker).called
	tp.Update(registry.Snapshot{Version: 2, Tenants: []registry.Tenant{suspended(nairobi)}})
	if resp := <-done; resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.body, "maintenance") {
		t.Fatalf("status %d, want the maintenance page:\n%s", resp.status, resp.body)
	}
}

func TestDialTimeoutIsADialError(t *testing.T) {
	// 192.0.2.0/24 (TEST-NET-1) is not routed: the dial hangs until the
	// timeout, or fails at once when the machine has no route at all.
	_, err := net.DialTimeout("tcp", "192.0.2.1:80", 50*time.Millisecond)
	if err == nil {
		t.Skip("TEST-NET-1 is reachable here")
	}
	if got := classify(err); got != reasonDial {
		t.Errorf("classify(%v) = %v, want dial", err, got)
	}
}

func TestUpstreamBrokeOffMidBody(t *testing.T) {
	tp := newTestProxy(t, Config{})
	up := newUpstreamFunc(t, "nairobi", "n1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		http.NewResponseController(w).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	if _, err := tp.send(context.Background(), request{host: "nairobi.school.localhost"}); err == nil {
		t.Fatal("client read a complete response from a broken one")
	}
	eventually(t, "the abort to be counted", func() bool {
		return testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", ReasonOther)) == 1 &&
			testutil.ToFloat64(tp.metrics.inFlight) == 0
	})
}

// TestUpgradeIsProxied: WebSocket-style upgrades pass through the status
// recorder's Hijack.
func TestUpgradeIsProxied(t *testing.T) {
	tp := newTestProxy(t, Config{})
	up := newUpstreamFunc(t, "nairobi", "n1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Header.Get("Upgrade") != "echo" || r.Header.Get(HeaderTenant) != "nairobi" {
			http.Error(w, "want an echo upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo " + line)
		_ = brw.Flush()
	})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})

	conn, err := net.Dial("tcp", strings.TrimPrefix(tp.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte("GET /live HTTP/1.1\r\nHost: nairobi.school.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_, _ = conn.Write([]byte("hello\n"))
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Fatalf("after upgrade read %q", line)
	}
	conn.Close()
	eventually(t, "the upgrade to be counted as 101", func() bool {
		return testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", "101")) == 1
	})
}
