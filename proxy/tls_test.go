package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

func tlsTestProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(Config{HoldTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tenant=" + r.Header.Get(HeaderTenant) + " proto=" + r.Header.Get("X-Forwarded-Proto")))
	}))
	t.Cleanup(app.Close)
	p.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{
		{ID: "a", Name: "alpha", Hosts: []string{"alpha.test", "records.alpha.test"}, PrimaryHost: "alpha.test", State: registry.StateActive},
		{ID: "b", Name: "beta", Hosts: []string{"beta.test"}, PrimaryHost: "beta.test", State: registry.StateSuspended},
		{ID: "c", Name: "gone", Hosts: []string{"gone.test"}, PrimaryHost: "gone.test", State: registry.StateDeleted},
	}, Instances: []registry.Instance{{ID: "a1", Tenant: "alpha", Addr: strings.TrimPrefix(app.URL, "http://"), Healthy: true}}})
	return p
}

func TestTenantOfAndHosts(t *testing.T) {
	p := tlsTestProxy(t)
	for host, want := range map[string]string{"alpha.test": "alpha", "records.alpha.test": "alpha", "beta.test": "beta", "gone.test": "", "x.test": ""} {
		got, ok := p.TenantOf(host)
		if got != want || ok != (want != "") {
			t.Errorf("TenantOf(%s) = %q, %v; want %q", host, got, ok, want)
		}
	}
	if h := p.Hosts(); len(h) != 3 || h["records.alpha.test"] != "alpha" || h["beta.test"] != "beta" {
		t.Errorf("Hosts() = %v", h)
	}
}

func TestServeTLSHostMustMatchSNI(t *testing.T) {
	p := tlsTestProxy(t)
	h := p.ServeTLS(TLSOptions{HSTS: "max-age=60"})
	cases := []struct {
		sni, host string
		code      int
		body      string
	}{
		{"alpha.test", "alpha.test", 200, "tenant=alpha proto=https"},
		{"alpha.test", "ALPHA.test:443", 200, "tenant=alpha proto=https"},
		{"alpha.test", "beta.test", 421, "Misdirected"},
		{"alpha.test", "records.alpha.test", 421, "Misdirected"}, // same school, other certificate: still 421
		{"beta.test", "alpha.test", 421, "Misdirected"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "https://"+c.host+"/", nil)
		r.Host = c.host
		r.TLS = &tls.ConnectionState{ServerName: c.sni}
		r.Header.Set("X-Forwarded-Proto", "http") // the client's claim: ignored
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("SNI %s Host %s: %d %q, want %d %q", c.sni, c.host, w.Code, w.Body.String(), c.code, c.body)
		}
		if w.Header().Get("Strict-Transport-Security") != "max-age=60" {
			t.Errorf("SNI %s Host %s: no HSTS", c.sni, c.host)
		}
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	p := tlsTestProxy(t)
	cases := []struct {
		method, host, target, port string
		code                       int
		location                   string
	}{
		{"GET", "alpha.test", "/a?b=c", "443", 301, "https://alpha.test/a?b=c"},
		{"HEAD", "Alpha.Test:80", "/", "8443", 301, "https://alpha.test:8443/"},
		{"POST", "beta.test", "/admin/login/", "443", 308, "https://beta.test/admin/login/"},
		{"GET", "unknown.test", "/", "443", 404, ""},
		{"GET", "gone.test", "/", "443", 404, ""},
		{"GET", "beta.test", "/", "443", 503, ""}, // not eligible for a certificate: served (maintenance page)
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://x"+c.target, nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		p.RedirectToHTTPS(c.port, func(h string) bool { return h != "beta.test" || c.method == "POST" }).ServeHTTP(w, r)
		if w.Code != c.code || w.Header().Get("Location") != c.location {
			t.Errorf("%s %s%s: %d %q, want %d %q", c.method, c.host, c.target, w.Code, w.Header().Get("Location"), c.code, c.location)
		}
	}
	// Over plain HTTP, a client's X-Forwarded-Proto: https does not reach
	// the app as the truth.
	r := httptest.NewRequest("GET", "http://alpha.test/", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if got := w.Body.String(); got != "tenant=alpha proto=http" {
		t.Errorf("plain HTTP with a client-sent X-Forwarded-Proto: app saw %q", got)
	}
}

func TestStateCollector(t *testing.T) {
	p := tlsTestProxy(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.StateCollector())
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP campus_proxy_tenant_state 1 per routed tenant, labelled with its state in the current routing table.
# TYPE campus_proxy_tenant_state gauge
campus_proxy_tenant_state{state="active",tenant="alpha"} 1
campus_proxy_tenant_state{state="suspended",tenant="beta"} 1
`))
	if err != nil {
		t.Error(err)
	}
}

// Issue 25 point 7: `campus dev --tls` sent a year of HSTS for
// *.localhost, which a browser then applies to a later plain `campus dev`.
func TestNoHSTSForLocalhostOrIPs(t *testing.T) {
	h := tlsTestProxy(t).ServeTLS(TLSOptions{HSTS: "max-age=31536000"})
	cases := []struct {
		host string
		want bool
	}{
		{"alpha.test", true},
		{"localhost", false},
		{"school.localhost", false},
		{"Nairobi.School.LOCALHOST:8443", false},
		{"127.0.0.1", false},
		{"127.0.0.1:8443", false},
		{"[::1]:8443", false},
		{"localhost.alpha.test", true}, // only the .localhost suffix is special
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "https://alpha.test/", nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get("Strict-Transport-Security") != ""; got != c.want {
			t.Errorf("Host %s: HSTS sent %v, want %v", c.host, got, c.want)
		}
	}
}
