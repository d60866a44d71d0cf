package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		if _, err := ca.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err == nil {
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
