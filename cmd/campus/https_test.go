package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/internal/systemtest"
)

// httpsClient sends every request to the proxy's HTTPS port, with the
// URL's host as server name, trusting roots only.
func httpsClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// waitHTTPS polls url until it answers code.
func waitHTTPS(t *testing.T, c *http.Client, url string, code int) *http.Response {
	t.Helper()
	var resp *http.Response
	err := systemtest.Eventually(120*time.Second, func() error {
		var err error
		if resp, err = c.Get(url); err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if resp.StatusCode != code {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: no %d within 120 s (last: %v)", url, code, err)
	}
	return resp
}

// TestDevTLS: `campus dev --tls` serves every school over HTTPS (HTTP/2)
// with certificates from a local CA created in the data folder; plain HTTP
// redirects; cookies are Secure without a flag; a custom domain added with
// `campus tenant host add` is served with its own certificate and stops
// being served when removed; a host of one school on a connection opened
// for another gets 421.
func TestDevTLS(t *testing.T) {
	tlsPort := freePort(t)
	d := startDev(t, "--tls", "--tls-listen", "127.0.0.1:"+tlsPort)
	tlsAddr := "127.0.0.1:" + tlsPort

	caDir := filepath.Join(d.data, "ca")
	st, err := os.Stat(filepath.Join(caDir, certs.DevCAKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	caPEM, err := os.ReadFile(filepath.Join(caDir, certs.DevCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	if out := d.logs.String(); !strings.Contains(out, "Trust it once") || !strings.Contains(out, "https://nairobi.school.localhost:"+tlsPort+"/") {
		t.Errorf("the banner shows no trust instructions or no https URL:\n%s", out)
	}

	c := httpsClient(tlsAddr, roots)
	base := "https://nairobi.school.localhost:" + tlsPort
	resp := waitHTTPS(t, c, base+"/admin/login/", http.StatusOK)
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS protocol %s, want HTTP/2", resp.Proto)
	}
	if resp.TLS.PeerCertificates[0].DNSNames[0] != "nairobi.school.localhost" {
		t.Errorf("certificate for %v", resp.TLS.PeerCertificates[0].DNSNames)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS %q for a *.localhost name: a browser would force HTTPS on it for a later plain campus dev", h)
	}
	cookies := resp.Header.Values("Set-Cookie")
	if len(cookies) == 0 {
		t.Fatal("the login page set no cookie")
	}
	for _, ck := range cookies {
		if !strings.Contains(ck, "; Secure") {
			t.Errorf("cookie over HTTPS is not Secure: %s", ck)
		}
	}

	// Plain HTTP: a redirect to the same URL over HTTPS.
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+d.proxyPort+"/students?q=a", nil)
	req.Host = "nairobi.school.localhost"
	if resp, err = d.client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != base+"/students?q=a" {
		t.Errorf("plain HTTP: %d %q", resp.StatusCode, loc)
	}

	// Unknown server name: no certificate.
	if conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "unknown.school.localhost", InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("handshake for an unknown host succeeded")
	}

	// accra's Host on a connection opened for nairobi: 421, nothing of accra.
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&tls.Dialer{Config: &tls.Config{ServerName: "nairobi.school.localhost", RootCAs: roots}}).DialContext(ctx, network, tlsAddr)
	}}
	resp, err = (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://accra.school.localhost:" + tlsPort + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(string(b), "Accra") {
		t.Errorf("accra on nairobi's connection: %d %q", resp.StatusCode, b)
	}

	// A custom domain: added, served with its own certificate; removed, gone.
	custom := "records.uonbi.test"
	if out, err := d.campus(nil, "", "tenant", "host", "add", "nairobi", custom); err != nil {
		t.Fatalf("host add: %v\n%s", err, out)
	}
	if out, err := d.campus(nil, "", "tenant", "host", "add", "accra", custom); err == nil || !strings.Contains(out, `belongs to tenant "nairobi"`) {
		t.Errorf("adding nairobi's host to accra: %v\n%s", err, out)
	}
	resp = waitHTTPS(t, c, "https://"+custom+":"+tlsPort+"/", http.StatusOK)
	if !strings.Contains(readAll(resp), "Nairobi") || resp.TLS.PeerCertificates[0].DNSNames[0] != custom {
		t.Errorf("custom domain: certificate %v", resp.TLS.PeerCertificates[0].DNSNames)
	}
	if out, err := d.campus(nil, "", "tenant", "host", "remove", "nairobi", custom); err != nil {
		t.Fatalf("host remove: %v\n%s", err, out)
	}
	if systemtest.Eventually(60*time.Second, func() error {
		conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: custom, RootCAs: roots})
		if err != nil {
			return nil
		}
		conn.Close()
		return errors.New("still served")
	}) != nil {
		t.Fatal("a removed host is still served over HTTPS after 60 s")
	}
	if code, _ := d.get(d.client(), custom, "/"); code != http.StatusNotFound {
		t.Errorf("a removed host over plain HTTP: %d, want 404", code)
	}
	if out, err := d.campus(nil, "", "tenant", "host", "remove", "nairobi", "nairobi.school.localhost"); err == nil || !strings.Contains(out, "primary host") {
		t.Errorf("removing the primary host: %v\n%s", err, out)
	}
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}
