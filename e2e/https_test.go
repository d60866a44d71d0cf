package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/campus-saas/campus/certs"
)

// TestHTTPSInBrowser loads a school over HTTPS through the proxy of a
// `campus dev --tls`, in Chromium told to trust the dev CA (by the SPKI
// hash of the CA, which the proxy sends in its chain), and checks the same
// certificate in Go against ca.pem. A Chromium that does not trust the CA
// refuses the page: the trust comes from the CA, not from ignoring errors.
func TestHTTPSInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test starts the whole system; skipped with -short")
	}
	chromiumPath(t)
	tlsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	// Plain HTTP keeps serving (no redirect) so the readiness checks and
	// superuser setup work as for the shared system.
	sys, err := startDevWith("campus-dev-tls.log", "--tls", "--tls-listen", "127.0.0.1:"+tlsPort, "--https-redirect=false")
	if err != nil {
		t.Fatalf("start campus dev --tls: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.stop(); err != nil {
			t.Error(err)
		}
	})

	caPEM, err := os.ReadFile(filepath.Join(sys.data, "ca", certs.DevCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		t.Fatal("ca.pem: no PEM block")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	// The test's own check of the certificate the browser will get.
	host := "nairobi.school.localhost"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+tlsPort,
		&tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to %s, verified against the dev CA: %v", host, err)
	}
	conn.Close()

	url := "https://" + host + ":" + tlsPort + "/"
	b := newTabWith(t, sys, desktop, chromedp.Flag("ignore-certificate-errors-spki-list", certs.SPKIHash(ca)))
	b.open(url, http.StatusOK, "nairobi-over-https")
	if proto := value(b, "read the protocol", chromedp.Evaluate[string](`location.protocol`)); proto != "https:" {
		t.Errorf("location.protocol %q", proto)
	}
	if !strings.Contains(b.text(), "Nairobi") {
		t.Errorf("the page over HTTPS does not show Nairobi:\n%s", b.text())
	}
	if secure := value(b, "read window.isSecureContext", chromedp.Evaluate[bool](`window.isSecureContext`)); !secure {
		t.Error("Chromium does not treat the page as a secure context")
	}

	// Without the CA's hash Chromium refuses the certificate.
	other := newTabWith(t, sys, desktop, chromedp.Flag("ignore-certificate-errors-spki-list", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	ctx, cancel := context.WithTimeout(other.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.NavigateResponse(url)); err == nil || !strings.Contains(err.Error(), "CERT") {
		t.Errorf("a browser that does not trust the dev CA loaded %s (err %v)", url, err)
	}
}
