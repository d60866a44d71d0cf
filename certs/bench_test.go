package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/proxy"
)

// benchEdge is a proxy serving one school over plain HTTP and over TLS
// with the dev CA, on loopback.
func benchEdge(b *testing.B) (plainAddr, tlsAddr string, roots *x509.CertPool) {
	b.Helper()
	logger := slog.New(slog.DiscardHandler)
	p, err := proxy.New(proxy.Config{Logger: logger, HoldTimeout: -1})
	if err != nil {
		b.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	appLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go app.Serve(appLn)
	b.Cleanup(func() { app.Close() })
	p.Update(snapshot(1, school{name: "bench", hosts: []string{"bench.campus.test"}, addr: appLn.Addr().String()}))
	ca, err := LoadOrCreateDevCA(b.TempDir(), p, nil)
	if err != nil {
		b.Fatal(err)
	}
	plainLn, _ := net.Listen("tcp", "127.0.0.1:0")
	tlsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = httpserve.Serve(ctx, httpserve.New(p, logger), plainLn) }()
	go func() {
		defer wg.Done()
		_ = httpserve.ServeTLS(ctx, httpserve.New(p.ServeTLS(proxy.TLSOptions{}), logger), tlsLn, ca.TLSConfig())
	}()
	b.Cleanup(func() { cancel(); wg.Wait() })
	roots = x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	return plainLn.Addr().String(), tlsLn.Addr().String(), roots
}

// BenchmarkRequest: one GET through the proxy on a kept-alive connection:
// plain HTTP/1.1, HTTPS HTTP/1.1 and HTTPS HTTP/2.
func BenchmarkRequest(b *testing.B) {
	plain, tlsAddr, roots := benchEdge(b)
	for _, c := range []struct {
		name, url, addr string
		h2              bool
	}{
		{"http1", "http://bench.campus.test/", plain, false},
		{"https-http1", "https://bench.campus.test/", tlsAddr, false},
		{"https-h2", "https://bench.campus.test/", tlsAddr, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, c.addr)
				},
				TLSClientConfig:   &tls.Config{RootCAs: roots},
				ForceAttemptHTTP2: c.h2,
			}
			if !c.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			for b.Loop() {
				resp, err := client.Get(c.url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkHandshake: a full TLS handshake for a school's host (served
// from the in-memory certificate), against one for an unknown name (refused
// after the routing-table lookup: what a flood of random names costs).
func BenchmarkHandshake(b *testing.B) {
	_, tlsAddr, roots := benchEdge(b)
	for _, c := range []struct {
		name, sni string
		ok        bool
	}{{"school", "bench.campus.test", true}, {"unknown", "random.campus.test", false}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: c.sni, RootCAs: roots})
				if (err == nil) != c.ok {
					b.Fatalf("%s: %v", c.sni, err)
				}
				if conn != nil {
					conn.Close()
				}
			}
		})
	}
}
