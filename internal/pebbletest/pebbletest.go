// Package pebbletest runs Let's Encrypt's test ACME server, Pebble, inside
// a test binary, with a DNS server of its own that sends every name to
// 127.0.0.1, so that Pebble validates HTTP-01 challenges against a proxy
// the test runs. Only tests import it.
package pebbletest

import (
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Server is Let's Encrypt's test ACME server, in this test binary.
type Server struct {
	URL       string            // ACME directory
	ACMERoots *x509.CertPool    // for the directory's own HTTPS
	ACMECert  *x509.Certificate // the directory's own certificate (its root)
	Roots     *x509.CertPool    // the roots the issued certificates chain to
	orders    atomic.Int64
}

// Orders is how many new orders Pebble received.
func (p *Server) Orders() int64 { return p.orders.Load() }

// Start starts Pebble whose VA validates HTTP-01 challenges on
// httpPort of 127.0.0.1 (every name resolves there through a DNS server of
// the test's own), issuing certificates valid for validity.
func Start(t testing.TB, httpPort int, validity time.Duration) *Server {
	t.Helper()
	// Pebble's VA sleeps up to 15 s before each validation and rejects 5 %
	// of nonces unless told otherwise (read when the VA and WFE are made).
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	dnsAddr := loopbackDNS(t)
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)},
	})
	validator := va.New(logger, httpPort, 0, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)
	p := &Server{}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL + wfe.DirectoryPath
	p.ACMERoots = x509.NewCertPool()
	p.ACMERoots.AddCert(srv.Certificate())
	p.ACMECert = srv.Certificate()
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

// startLoopbackDNS answers every A query with 127.0.0.1 (and AAAA with
// nothing), over TCP as Pebble's VA asks.
func loopbackDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}
