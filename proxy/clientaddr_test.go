package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// The app counts login failures by X-Forwarded-For and marks cookies
// Secure by X-Forwarded-Proto: a client must not choose either, and a
// trusted load balancer's word must be taken.
func TestForwardedHeadersTrustOnlyConfiguredProxies(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{HoldTimeout: -1, TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Join(r.Header.Values("X-Forwarded-For"), "|") + " " +
			strings.Join(r.Header.Values("X-Forwarded-Proto"), "|") + " " + r.Header.Get(HeaderTenant)))
	}))
	t.Cleanup(app.Close)
	p.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{
		{ID: "a", Name: "alpha", Hosts: []string{"alpha.test"}, PrimaryHost: "alpha.test", State: registry.StateActive},
	}, Instances: []registry.Instance{{ID: "a1", Tenant: "alpha", Addr: strings.TrimPrefix(app.URL, "http://"), Healthy: true}}})

	cases := []struct {
		name  string
		peer  string
		xff   []string
		proto string
		want  string // what the app sees: X-Forwarded-For, X-Forwarded-Proto, tenant
	}{
		{"direct client, no headers", "203.0.113.9:5000", nil, "", "203.0.113.9 http alpha"},
		{"untrusted client claims an address and https", "203.0.113.9:5000", []string{"198.51.100.1"}, "https", "203.0.113.9 http alpha"},
		{"untrusted client from a private range outside the list", "172.16.0.5:5000", []string{"198.51.100.1"}, "https", "172.16.0.5 http alpha"},
		{"trusted balancer", "10.1.2.3:5000", []string{"198.51.100.1"}, "https", "198.51.100.1 https alpha"},
		{"trusted single address", "192.0.2.1:5000", []string{"198.51.100.1"}, "http", "198.51.100.1 http alpha"},
		{"client spoofs the left of the chain", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.1"}, "https", "198.51.100.1 https alpha"},
		{"two trusted hops", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "", "198.51.100.1 http alpha"},
		{"chain over several header lines", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.1", "10.9.9.9"}, "", "198.51.100.1 http alpha"},
		{"garbage at the right ends the walk at the balancer", "10.1.2.3:5000", []string{"198.51.100.1, not-an-ip"}, "", "10.1.2.3 http alpha"},
		{"garbage at the left is never reached", "10.1.2.3:5000", []string{"<script>, 198.51.100.1"}, "", "198.51.100.1 http alpha"},
		{"only trusted hops: the leftmost", "10.1.2.3:5000", []string{"10.0.0.7, 10.9.9.9"}, "", "10.0.0.7 http alpha"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.1"}, "", "198.51.100.1 http alpha"},
		{"X-Forwarded-Proto, last value counts", "10.1.2.3:5000", []string{"198.51.100.1"}, "https, http", "198.51.100.1 http alpha"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://alpha.test/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if c.proto != "" {
				r.Header.Set("X-Forwarded-Proto", c.proto)
			}
			r.Header.Set("X-Real-Ip", "6.6.6.6")
			r.Header.Set(HeaderTenant, "beta") // a claim: never passed on
			w := httptest.NewRecorder()
			p.ServeHTTP(w, r)
			if w.Code != 200 || w.Body.String() != c.want {
				t.Errorf("app saw %d %q, want 200 %q", w.Code, w.Body.String(), c.want)
			}
		})
	}
}

func TestForwardedHopsAreBounded(t *testing.T) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8")
	p := &Proxy{cfg: Config{TrustedProxies: trusted}}
	r := httptest.NewRequest("GET", "http://alpha.test/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "198.51.100.1"+strings.Repeat(", 10.0.0.2", 100))
	got, _ := p.client(r)
	if got.String() == "198.51.100.1" || !trusted[0].Contains(got) {
		t.Errorf("client behind 100 trusted hops = %s, want the walk to stop at a trusted hop within %d", got, maxForwardedHops)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"", "[]", ""},
		{"10.0.0.0/8,  192.0.2.1 ,::1", "[10.0.0.0/8 192.0.2.1/32 ::1/128]", ""},
		{"::ffff:192.0.2.1", "[192.0.2.1/32]", ""},
		{"10.0.0.1/8", "", "did you mean 10.0.0.0/8"},
		{"lb.example.org", "", "not an address or CIDR prefix"},
		{"10.0.0.0/33", "", "not an address or CIDR prefix"},
	} {
		got, err := ParseTrustedProxies(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseTrustedProxies(%q) error = %v, want %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("ParseTrustedProxies(%q): %v", c.in, err)
		case c.err == "" && fmtPrefixes(got) != c.want:
			t.Errorf("ParseTrustedProxies(%q) = %s, want %s", c.in, fmtPrefixes(got), c.want)
		}
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}
