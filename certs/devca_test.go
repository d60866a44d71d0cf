package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fixedRoutes map[string]string

func (r fixedRoutes) TenantOf(h string) (string, bool) { t, ok := r[h]; return t, ok }
func (r fixedRoutes) Hosts() map[string]string         { return r }

func TestDevCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	routes := fixedRoutes{"nairobi.school.localhost": "nairobi", "accra.school.localhost": "accra"}
	ca, err := LoadOrCreateDevCA(dir, routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, DevCAKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st.Mode())
	}
	// Created once: a second load is the same CA.
	again, err := LoadOrCreateDevCA(dir, routes, nil)
	if err != nil || !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Fatalf("second load: %v, same CA %v", err, err == nil && bytes.Equal(again.CertPEM(), ca.CertPEM()))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for host, other := range map[string]string{"nairobi.school.localhost": "accra.school.localhost", "accra.school.localhost": "nairobi.school.localhost"} {
		c, err := ca.GetCertificate(&tls.ClientHelloInfo{ServerName: strings.ToUpper(host)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: other, Roots: roots}); err == nil {
			t.Errorf("the certificate of %s is valid for %s", host, other)
		}
	}
	for _, name := range []string{"", "unknown.school.localhost", "localhost", "bad host"} {
		if c, _ := ca.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); c != nil {
			t.Errorf("%q got a certificate", name)
		}
	}
	if !strings.Contains(ca.TrustInstructions(dir), SPKIHash(ca.Certificate())) {
		t.Error("instructions without the SPKI hash")
	}
	// A key readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, DevCAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDevCA(dir, routes, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0644 key: %v", err)
	}
}

// Issue 25 point 4: a refused handshake gets the unrecognized_name alert
// (not internal_error) and is counted by a bounded reason.
func TestRefusedHandshakeAlert(t *testing.T) {
	reg := prometheus.NewRegistry()
	ca, err := LoadOrCreateDevCA(filepath.Join(t.TempDir(), "ca"), fixedRoutes{"nairobi.school.localhost": "nairobi"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	cases := []struct{ sni, reason string }{
		{"random-1.example.org", ReasonUnknownHost},
		{"unknown.school.localhost", ReasonUnknownHost},
		{"", ReasonNoSNI}, // dialled by address: no SNI
	}
	for _, c := range cases {
		_, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: c.sni, RootCAs: roots, InsecureSkipVerify: c.sni == ""})
		if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("SNI %q: %v, want the unrecognized_name alert", c.sni, err)
		}
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "nairobi.school.localhost", RootCAs: roots})
	if err != nil {
		t.Fatalf("a school's host: %v", err)
	}
	conn.Close()
	for reason, want := range map[string]float64{ReasonUnknownHost: 2, ReasonNoSNI: 1, ReasonBadName: 0} {
		if got := testutil.ToFloat64(ca.metrics.refused.WithLabelValues(reason)); got != want {
			t.Errorf("%s{reason=%s} = %v, want %v", MetricHandshakesRefused, reason, got, want)
		}
	}
}
