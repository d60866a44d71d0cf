package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

// Issue 25, cheap abuse: one client address holding many idle
// connections cannot use up the proxy's connections; another address is
// served all the while, and a slot is given back when a connection
// closes.
func TestConnectionsPerAddressCapped(t *testing.T) {
	const max = 4
	tp := newTestProxy(t, Config{MaxConnsPerAddr: max})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	srv := httptest.NewUnstartedServer(tp.Proxy)
	srv.Listener = tp.LimitListener(srv.Listener)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	dial := func(from string) net.Conn {
		t.Helper()
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// served reports whether a request on c gets the app's answer.
	served := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: nairobi.school.localhost\r\n\r\n")); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	var held []net.Conn // idle, as a slow client's
	for range max {
		held = append(held, dial("127.0.0.1"))
	}
	if served(dial("127.0.0.1")) {
		t.Errorf("connection %d from one address served, want it closed at once (cap %d)", max+1, max)
	}
	if got := testutil.ToFloat64(tp.metrics.connsRefused); got != 1 {
		t.Errorf("%s = %v, want 1", MetricConnsRefused, got)
	}
	if !served(dial("127.0.0.2")) {
		t.Error("another address was not served while the first held its cap")
	}
	if !served(held[0]) {
		t.Error("a connection within the cap was not served")
	}
	held[1].Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !served(dial("127.0.0.1")) { // the server notices the close on its own time
		if ctx.Err() != nil {
			t.Fatal("a closed connection's slot was never given back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 25, cheap abuse: one address cannot make the proxy accept (and
// do the TLS handshake of) connections faster than its bucket allows,
// however short-lived they are (a malformed body's connection is closed
// after its 400); another address is served all the while. The refill
// is one a thousand seconds here, so that no timing decides.
func TestNewConnectionsPerAddressRateLimited(t *testing.T) {
	const burst = 5
	tp := newTestProxy(t, Config{ConnRatePerAddr: 0.001, ConnBurstPerAddr: burst})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	srv := httptest.NewUnstartedServer(tp.Proxy)
	srv.Listener = tp.LimitTLSListener(srv.Listener) // plain HTTP here: what is counted is the accepts
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// served opens a connection from the address from, asks for a page
	// and closes it; it reports whether the app's answer came.
	served := func(from string) bool {
		t.Helper()
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: nairobi.school.localhost\r\nConnection: close\r\n\r\n")); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for i := range burst {
		if !served("127.0.0.1") {
			t.Fatalf("connection %d of the burst of %d was not served", i+1, burst)
		}
	}
	if served("127.0.0.1") {
		t.Errorf("connection %d from one address served, want it closed at once (burst %d, no refill)", burst+1, burst)
	}
	if got := testutil.ToFloat64(tp.metrics.connsRefused); got != 1 {
		t.Errorf("%s = %v, want 1", MetricConnsRefused, got)
	}
	if !served("127.0.0.2") {
		t.Error("another address was not served while the first was over its rate")
	}
}
