package main

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/pebbletest"
	"github.com/campus-saas/campus/internal/systemtest"
)

// TestProxyACME runs the real `campus proxy` binary with HTTPS on, against
// Pebble: the certificate of a school's host is ordered on its first
// handshake, the HTTP-01 challenge answered by the proxy itself on
// --listen; an unknown name orders nothing; a custom domain added with
// `campus tenant host add` gets its own certificate, and stops being
// served once removed.
func TestProxyACME(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "lagos")
	host := name + ".campus.test"
	c.ok("tenant", "create", name, "--host", host)

	httpPort, tlsPort := freePort(t), freePort(t)
	port, _ := strconv.Atoi(httpPort)
	pb := pebbletest.Start(t, port, 90*24*time.Hour)
	rootsFile := filepath.Join(t.TempDir(), "acme-roots.pem")
	roots := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pb.ACMECert.Raw})
	if err := os.WriteFile(rootsFile, roots, 0o600); err != nil {
		t.Fatal(err)
	}

	systemtest.StartForTest(t, "campus proxy", []string{campusBin, "proxy",
		"--registry", "embedded", "--data", c.env["CAMPUS_DATA"],
		"--listen", "127.0.0.1:" + httpPort, "--admin-listen", "127.0.0.1:" + freePort(t),
		"--tls-listen", "127.0.0.1:" + tlsPort,
		"--acme-directory", pb.URL, "--acme-ca-roots", rootsFile, "--acme-email", "ops@campus.test",
		"--log-format", "json"},
		systemtest.Options{Env: systemtest.CleanEnv(), StopSignal: os.Interrupt, StopTimeout: 30 * time.Second})
	tlsAddr := "127.0.0.1:" + tlsPort

	handshake := func(serverName string) (*tls.ConnectionState, error) {
		conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: serverName, RootCAs: pb.Roots})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	waitCert := func(serverName string) {
		t.Helper()
		var st *tls.ConnectionState
		if err := systemtest.Eventually(120*time.Second, func() (err error) {
			st, err = handshake(serverName)
			return err
		}); err != nil {
			t.Fatalf("no certificate from Pebble for %s within 120 s: %v", serverName, err)
		}
		if got := st.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != serverName {
			t.Fatalf("certificate for %s names %v", serverName, got)
		}
	}
	waitCert(host)
	if n := pb.Orders(); n != 1 {
		t.Errorf("%d orders for one host, want 1", n)
	}
	if matches, _ := filepath.Glob(filepath.Join(c.env["CAMPUS_DATA"], "certs", "certificates", "*", host, host+".crt")); len(matches) != 1 {
		t.Errorf("certificate not stored under --data/certs: %v", matches)
	}
	if _, err := handshake("nobody.campus.test"); err == nil {
		t.Error("an unknown name got a certificate")
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("%d orders after an unknown name, want still 1", n)
	}

	// Plain HTTP redirects to HTTPS.
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+httpPort+"/x", nil)
	req.Host = host
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://"+host+":"+tlsPort+"/x" {
		t.Errorf("plain HTTP: %d %q", resp.StatusCode, loc)
	}

	// host add → its own certificate; host remove → no longer served.
	custom := "records." + name + ".example.org"
	c.ok("tenant", "host", "add", name, custom)
	waitCert(custom)
	c.ok("tenant", "host", "remove", name, custom)
	if systemtest.Eventually(60*time.Second, func() error {
		if _, err := handshake(custom); err != nil {
			return nil
		}
		return errors.New("still served")
	}) != nil {
		t.Fatal("the removed host is still served after 60 s")
	}
	if n := pb.Orders(); n != 2 {
		t.Errorf("%d orders, want 2", n)
	}
}
