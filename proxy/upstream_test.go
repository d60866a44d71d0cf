package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

func oneTenant(t *testing.T, tp *testProxy, name string, in ...registry.Instance) string {
	t.Helper()
	host := name + ".school.localhost"
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{tenant(t, name, name, host)}, Instances: in})
	return host
}

// TestUpstreamConnectionsReused: the GETs of one client after another go
// over one kept-alive connection to the app.
func TestUpstreamConnectionsReused(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	tp := newTestProxy(t, Config{})
	host := oneTenant(t, tp, "nairobi", registry.Instance{ID: "n1", Tenant: "nairobi", Addr: up.Listener.Addr().String(), Healthy: true})
	for i := range 50 {
		method := http.MethodGet
		if i%5 == 4 {
			method = http.MethodHead
		}
		if r := tp.do(t, request{method: method, host: host, path: fmt.Sprintf("/p/%d", i)}); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 requests in a row opened %d connections to the app, want 1", n)
	}
}

// TestUpstreamStaleIdleConnection: an idle connection the app has closed
// is not an error for the next GET: it goes out on a new connection.
func TestUpstreamStaleIdleConnection(t *testing.T) {
	up := newUpstream(t, "accra", "a1")
	tp := newTestProxy(t, Config{})
	host := oneTenant(t, tp, "accra", up.instance())
	for i := range 5 {
		if r := tp.do(t, request{host: host}); r.status != 200 || r.echo(t).Tenant != "accra" {
			t.Fatalf("request %d after the app closed its idle connections: %d %s", i, r.status, r.body)
		}
		up.CloseClientConnections()
	}
}

// TestUpstreamExtraBytesNotForwarded: an app that sends more than the
// response it announced (here a second, unrequested response) loses the
// connection; the extra bytes never become the answer to the next
// request.
func TestUpstreamExtraBytesNotForwarded(t *testing.T) {
	addr := rawApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+
				"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
		}
	})
	tp := newTestProxy(t, Config{})
	host := oneTenant(t, tp, "lagos", registry.Instance{ID: "l1", Tenant: "lagos", Addr: addr, Healthy: true})
	for i := range 5 {
		if r := tp.do(t, request{host: host}); r.status != 200 || r.body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, r.status, r.body)
		}
	}
}

// TestUpstreamPoolsPerInstance: requests for two tenants, interleaved,
// over pooled connections: each app only ever sees its own tenant's
// requests, and each answer is from the right app.
func TestUpstreamPoolsPerInstance(t *testing.T) {
	a, b := newUpstream(t, "nairobi", "n1"), newUpstream(t, "accra", "a1")
	tp := newTestProxy(t, Config{})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants: []registry.Tenant{tenant(t, "nairobi", "N", "nairobi.school.localhost"),
			tenant(t, "accra", "A", "accra.school.localhost")},
		Instances: []registry.Instance{a.instance(), b.instance()}})
	for i := range 40 {
		name := []string{"nairobi", "accra"}[i%2]
		r := tp.do(t, request{host: name + ".school.localhost", path: "/" + name})
		e := r.echo(t)
		if r.status != 200 || e.Tenant != name || e.Path != "/"+name || e.Header.Get(HeaderTenant) != name {
			t.Fatalf("request %d for %s answered by %+v", i, name, e)
		}
	}
	if a.hits.Load() != 20 || b.hits.Load() != 20 {
		t.Errorf("hits: nairobi %d, accra %d, want 20 each", a.hits.Load(), b.hits.Load())
	}
}

// TestUpstreamLateExtraBytesNotForwarded: bytes an app sends on a
// connection after its response was complete (while it is idle) are
// never taken for the answer to the next request.
func TestUpstreamLateExtraBytesNotForwarded(t *testing.T) {
	sent := make(chan struct{}, 10)
	addr := rawApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(50 * time.Millisecond) // the proxy has finished with the response
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
			sent <- struct{}{}
		}
	})
	tp := newTestProxy(t, Config{})
	host := oneTenant(t, tp, "lagos", registry.Instance{ID: "l1", Tenant: "lagos", Addr: addr, Healthy: true})
	for i := range 3 {
		if r := tp.do(t, request{host: host}); r.status != 200 || r.body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, r.status, r.body)
		}
		<-sent // on loopback the bytes are in the proxy's socket once written
	}
}

// TestUpstreamHugeHeadersRefused: an app whose response headers never end
// gets the client a 502, not a proxy that reads them forever.
func TestUpstreamHugeHeadersRefused(t *testing.T) {
	addr := rawApp(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("x", 1000) + "\r\n"
		for range 3000 { // 3 MB of headers
			if _, err := fmt.Fprint(c, line); err != nil {
				return
			}
		}
	})
	tp := newTestProxy(t, Config{})
	host := oneTenant(t, tp, "lagos", registry.Instance{ID: "l1", Tenant: "lagos", Addr: addr, Healthy: true})
	if r := tp.do(t, request{host: host}); r.status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", r.status)
	}
}

// rawApp is an app written at the byte level, for answers no well-behaved
// server sends: serve gets each accepted connection, closed after it
// returns. It returns the app's address.
func rawApp(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}
