package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
)

// school is one tenant of a test fixture with its app (a backend that
// says which tenant it is and which scheme the proxy told it).
type school struct {
	name  string
	hosts []string
	state registry.State
	addr  string
}

func startSchoolApp(t *testing.T, name string) string {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "school=%s header=%s proto=%s host=%s", name, r.Header.Get(proxy.HeaderTenant),
			r.Header.Get("X-Forwarded-Proto"), r.Host)
	}))
	t.Cleanup(app.Close)
	return strings.TrimPrefix(app.URL, "http://")
}

func snapshot(version uint64, schools ...school) registry.Snapshot {
	s := registry.Snapshot{Version: version}
	for _, sc := range schools {
		st := sc.state
		if st == "" {
			st = registry.StateActive
		}
		s.Tenants = append(s.Tenants, registry.Tenant{ID: "id-" + sc.name, Name: sc.name, Hosts: sc.hosts,
			PrimaryHost: sc.hosts[0], Database: sc.name, State: st})
		if sc.addr != "" {
			s.Instances = append(s.Instances, registry.Instance{ID: sc.name + "-1", Tenant: sc.name, Addr: sc.addr, Healthy: true})
		}
	}
	return s
}

// edge is one proxy with its HTTP and HTTPS listeners and a Manager.
type edge struct {
	proxy    *proxy.Proxy
	manager  *Manager
	metrics  *prometheus.Registry
	httpLn   net.Listener
	tlsAddr  string
	httpAddr string
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// startEdge serves a proxy with certificates from Pebble. httpLn is the
// proxy's HTTP listener (made first, since Pebble must know its port).
func startEdge(t *testing.T, httpLn net.Listener, pb *pebbleServer, storage certmagic.Storage, tune func(*ACMEConfig)) *edge {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	metrics := prometheus.NewRegistry()
	p, err := proxy.New(proxy.Config{Logger: logger, Registerer: metrics, HoldTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ACMEConfig{Routes: p, Storage: storage, Logger: logger, Registerer: metrics,
		Directory: pb.URL, Email: "ops@campus.test", TrustedRoots: pb.ACMERoots}
	if tune != nil {
		tune(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	tlsLn := listen(t)
	e := &edge{proxy: p, manager: m, metrics: metrics, httpLn: httpLn,
		tlsAddr: tlsLn.Addr().String(), httpAddr: httpLn.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		h := m.HTTPHandler(p.RedirectToHTTPS(strconv.Itoa(port(tlsLn)), Eligible))
		_ = httpserve.Serve(ctx, httpserve.New(h, logger), httpLn)
	}()
	go func() {
		defer wg.Done()
		h := p.ServeTLS(proxy.TLSOptions{HSTS: "max-age=31536000"})
		_ = httpserve.ServeTLS(ctx, httpserve.New(h, logger), tlsLn, m.TLSConfig())
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

// handshake opens a TLS connection for serverName and returns the leaf
// certificate, verified against roots for serverName.
func handshake(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// client sends every request to addr over TLS trusting roots; the server
// name is the URL's host, as a browser would send it.
func client(addr string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOnDemandCertificateEndToEnd(t *testing.T) {
	httpLn := listen(t)
	pb := startPebble(t, port(httpLn), 90*24*time.Hour)
	e := startEdge(t, httpLn, pb, fileStorage(t), nil)
	e.proxy.Update(snapshot(1,
		school{name: "nairobi", hosts: []string{"nairobi.campus.test"}, addr: startSchoolApp(t, "nairobi")},
		school{name: "closed", hosts: []string{"closed.campus.test"}, state: registry.StateSuspended},
	))

	c := client(e.tlsAddr, pb.Roots)
	req, _ := http.NewRequest("GET", "https://nairobi.campus.test/students?x=1", nil)
	req.Header.Set("X-Forwarded-Proto", "http") // a client's claim: overwritten
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("HTTPS request through the proxy (certificate issued by Pebble on demand): %v", err)
	}
	got := body(t, resp)
	if resp.StatusCode != 200 || got != "school=nairobi header=nairobi proto=https host=nairobi.campus.test" {
		t.Fatalf("got %d %q", resp.StatusCode, got)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h != "max-age=31536000" {
		t.Errorf("HSTS %q", h)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "nairobi.campus.test" {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}

	// HTTP/1.1 over TLS too.
	c11 := client(e.tlsAddr, pb.Roots)
	c11.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	c11.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	resp, err = c11.Get("https://nairobi.campus.test/")
	if err != nil {
		t.Fatal(err)
	}
	if body(t, resp); resp.ProtoMajor != 1 {
		t.Errorf("protocol %s, want HTTP/1.1", resp.Proto)
	}

	// A suspended school is still a school: it gets a certificate and
	// its maintenance page over HTTPS.
	resp, err = c.Get("https://closed.campus.test/")
	if err != nil {
		t.Fatalf("suspended school over HTTPS: %v", err)
	}
	if body(t, resp); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("suspended school: %d", resp.StatusCode)
	}

	if n := pb.Orders(); n != 2 {
		t.Errorf("Pebble received %d orders, want 2 (one per school host)", n)
	}
	if n := testutil.ToFloat64(e.manager.magic.Issuers[0].(*cappedIssuer).orders); n != 2 {
		t.Errorf("%s = %v, want 2", MetricACMEOrders, n)
	}
	// Expiry metric: one series per tenant, at the certificate's NotAfter.
	if err := testutil.GatherAndCompare(e.metrics, strings.NewReader(fmt.Sprintf(`
# HELP %[1]s Earliest expiry (Unix seconds) of the certificates the proxy holds for the tenant's hosts.
# TYPE %[1]s gauge
%[1]s{tenant="closed"} %[2]d
%[1]s{tenant="nairobi"} %[3]d
`, MetricCertExpiry, mustExpiry(t, e, "closed.campus.test"), leaf.NotAfter.Unix())), MetricCertExpiry); err != nil {
		t.Error(err)
	}

	// Plain HTTP redirects to HTTPS, keeping path and query.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ = http.NewRequest("GET", "http://"+e.httpAddr+"/students?page=2", nil)
	req.Host = "nairobi.campus.test"
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	_, tlsPort, _ := net.SplitHostPort(e.tlsAddr)
	want := "https://nairobi.campus.test:" + tlsPort + "/students?page=2"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("redirect %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	req, _ = http.NewRequest("POST", "http://"+e.httpAddr+"/admin/login", strings.NewReader("a=b"))
	req.Host = "nairobi.campus.test"
	if resp, err = plain.Do(req); err != nil {
		t.Fatal(err)
	}
	if body(t, resp); resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST redirect %d, want 308", resp.StatusCode)
	}
	// An unknown host on plain HTTP gets the unknown-school 404, no redirect.
	req, _ = http.NewRequest("GET", "http://"+e.httpAddr+"/", nil)
	req.Host = "nobody.campus.test"
	if resp, err = plain.Do(req); err != nil {
		t.Fatal(err)
	}
	if body(t, resp); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
		t.Errorf("unknown host over HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func mustExpiry(t *testing.T, e *edge, host string) int64 {
	t.Helper()
	exp, ok := e.manager.expiry(host)
	if !ok {
		t.Fatalf("no certificate held for %s", host)
	}
	return exp.Unix()
}

func TestUnknownHostGetsNoCertificateAndNoOrder(t *testing.T) {
	httpLn := listen(t)
	pb := startPebble(t, port(httpLn), 90*24*time.Hour)
	e := startEdge(t, httpLn, pb, fileStorage(t), nil)
	e.proxy.Update(snapshot(1, school{name: "accra", hosts: []string{"accra.campus.test", "accra.school.localhost"}, addr: startSchoolApp(t, "accra")}))

	// accra.school.localhost is a school's host, but no public CA issues
	// for it: no order either.
	for _, name := range []string{"unknown.campus.test", "ACCRA.campus.test.evil", "", "127.0.0.1", "campus.test", "accra.school.localhost"} {
		if _, err := handshake(e.tlsAddr, name, pb.Roots); err == nil {
			t.Errorf("server name %q: handshake succeeded", name)
		}
	}
	// Without SNI (and without checking the name), still no certificate.
	conn, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("handshake without SNI succeeded")
	}
	if n := pb.Orders(); n != 0 {
		t.Errorf("Pebble received %d orders for unknown names", n)
	}
	var n float64
	for _, r := range []string{ReasonNoSNI, ReasonBadName, ReasonUnknownHost} {
		n += testutil.ToFloat64(e.manager.metrics.refused.WithLabelValues(r))
	}
	if n < 6 {
		t.Errorf("%s = %v, want ≥ 6", MetricHandshakesRefused, n)
	}
}

// TestCertificateIsolation: a certificate for A's host is never served for
// B's host, and a request for B on a connection opened for A gets 421.
func TestCertificateIsolation(t *testing.T) {
	httpLn := listen(t)
	pb := startPebble(t, port(httpLn), 90*24*time.Hour)
	e := startEdge(t, httpLn, pb, fileStorage(t), nil)
	e.proxy.Update(snapshot(1,
		school{name: "alpha", hosts: []string{"alpha.campus.test", "records.alpha.test"}, addr: startSchoolApp(t, "alpha")},
		school{name: "beta", hosts: []string{"beta.campus.test"}, addr: startSchoolApp(t, "beta")},
	))
	for _, host := range []string{"alpha.campus.test", "records.alpha.test", "beta.campus.test", "alpha.campus.test", "beta.campus.test"} {
		leaf, err := handshake(e.tlsAddr, host, pb.Roots) // verifies the name
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
			t.Errorf("certificate for %s names %v", host, leaf.DNSNames)
		}
	}

	// Host B on a connection whose SNI is A (HTTP/1.1 and HTTP/2).
	for _, proto := range []string{"http/1.1", "h2"} {
		tr := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&tls.Dialer{Config: &tls.Config{ServerName: "alpha.campus.test", RootCAs: pb.Roots, NextProtos: []string{proto}}}).DialContext(ctx, network, e.tlsAddr)
			},
			ForceAttemptHTTP2: proto == "h2",
		}
		req, _ := http.NewRequest("GET", "https://beta.campus.test/", nil)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		got := body(t, resp)
		if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(got, "school=") {
			t.Errorf("%s: Host beta on alpha's connection: %d %q, want 421 and no school's content", proto, resp.StatusCode, got)
		}
		tr.CloseIdleConnections()
	}
}

func TestHostAddedGetsCertificateRemovedStopsBeingServed(t *testing.T) {
	httpLn := listen(t)
	pb := startPebble(t, port(httpLn), 90*24*time.Hour)
	e := startEdge(t, httpLn, pb, fileStorage(t), nil)
	app := startSchoolApp(t, "lagos")
	e.proxy.Update(snapshot(1, school{name: "lagos", hosts: []string{"lagos.campus.test"}, addr: app}))
	if _, err := handshake(e.tlsAddr, "records.unilag.test", pb.Roots); err == nil {
		t.Fatal("custom domain served before it was added")
	}
	// host add
	e.proxy.Update(snapshot(2, school{name: "lagos", hosts: []string{"lagos.campus.test", "records.unilag.test"}, addr: app}))
	resp, err := client(e.tlsAddr, pb.Roots).Get("https://records.unilag.test/")
	if err != nil {
		t.Fatalf("added host over HTTPS: %v", err)
	}
	if got := body(t, resp); !strings.HasPrefix(got, "school=lagos ") {
		t.Fatalf("added host: %q", got)
	}
	// host remove: the certificate is still cached, but not served.
	e.proxy.Update(snapshot(3, school{name: "lagos", hosts: []string{"lagos.campus.test"}, addr: app}))
	if _, err := handshake(e.tlsAddr, "records.unilag.test", pb.Roots); err == nil {
		t.Fatal("removed host still gets its certificate")
	}
	if _, err := handshake(e.tlsAddr, "lagos.campus.test", pb.Roots); err != nil {
		t.Fatalf("remaining host: %v", err)
	}
	if n := pb.Orders(); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
}

func TestShortLivedCertificateIsRenewed(t *testing.T) {
	httpLn := listen(t)
	pb := startPebble(t, port(httpLn), 30*time.Second)
	e := startEdge(t, httpLn, pb, fileStorage(t), func(c *ACMEConfig) {
		c.RenewCheckInterval = time.Second
		c.RenewalWindowRatio = 0.5
	})
	e.proxy.Update(snapshot(1, school{name: "kampala", hosts: []string{"kampala.campus.test"}, addr: startSchoolApp(t, "kampala")}))
	first, err := handshake(e.tlsAddr, "kampala.campus.test", pb.Roots)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leaf, err := handshake(e.tlsAddr, "kampala.campus.test", pb.Roots)
		if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate expires %v, not after the first's %v", leaf.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not renewed within 2 minutes (first expires %v; last error %v; %d orders)", first.NotAfter, err, pb.Orders())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := pb.Orders(); n < 2 {
		t.Errorf("%d orders, want a renewal order", n)
	}
}

// TestOrdersCappedAndFailuresBackOff: an order cap of 1 per hour lets one
// order through; a host whose validation fails is not ordered again at once.
func TestOrdersCappedAndFailuresBackOff(t *testing.T) {
	httpLn := listen(t)
	// Pebble validates on a port where nothing answers: every order fails.
	dead := listen(t)
	deadPort := port(dead)
	dead.Close()
	pb := startPebble(t, deadPort, 90*24*time.Hour)
	e := startEdge(t, httpLn, pb, fileStorage(t), func(c *ACMEConfig) { c.OrdersPerHour = 2 })
	e.proxy.Update(snapshot(1,
		school{name: "a", hosts: []string{"a.campus.test"}},
		school{name: "b", hosts: []string{"b.campus.test"}},
		school{name: "c", hosts: []string{"c.campus.test"}},
	))
	iss := e.manager.magic.Issuers[0].(*cappedIssuer)
	if _, err := handshake(e.tlsAddr, "a.campus.test", pb.Roots); err == nil {
		t.Fatal("handshake succeeded though validation cannot")
	}
	for range 3 {
		_, _ = handshake(e.tlsAddr, "a.campus.test", pb.Roots) // backing off: no new order
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("%d orders for a failing host, want 1 (then back-off)", n)
	}
	if n := testutil.ToFloat64(iss.errors.WithLabelValues(ReasonBackoff)); n < 1 {
		t.Errorf("back-off refusals %v", n)
	}
	_, _ = handshake(e.tlsAddr, "b.campus.test", pb.Roots) // second order: the cap's last
	_, _ = handshake(e.tlsAddr, "c.campus.test", pb.Roots) // capped
	if n := pb.Orders(); n != 2 {
		t.Errorf("%d orders with a cap of 2, want 2", n)
	}
	if n := testutil.ToFloat64(iss.errors.WithLabelValues(ReasonCapped)); n < 1 {
		t.Errorf("capped refusals %v", n)
	}
	if n := testutil.ToFloat64(iss.errors.WithLabelValues(ReasonFailed)); n != 2 {
		t.Errorf("failed orders %v, want 2", n)
	}
}

// fileStorage is certmagic's file storage in a folder of the test's own.
// certmagic's background maintenance may still be writing a renewal's
// files when the edge has been stopped (its Stop does not wait for it), so
// the folder is removed once that write is done rather than with
// t.TempDir, whose removal fails on a folder that is not yet empty.
func fileStorage(t *testing.T) *certmagic.FileStorage {
	t.Helper()
	dir, err := os.MkdirTemp("", "campus-certs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for os.RemoveAll(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	return &certmagic.FileStorage{Path: dir}
}
