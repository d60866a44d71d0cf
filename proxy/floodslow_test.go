package proxy

import (
	"crypto/tls"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/internal/h2flood"
	"github.com/campus-saas/campus/registry"
)

// Issue 25, the neighbour under a rapid reset: an address one of whose
// connections was told GOAWAY for a reset flood gets a small reset budget
// on its next connections (FloodBurst) and pays FloodConnCost of its
// bucket of new TLS connections for each, so that a flood from one
// address costs the proxy a few short connections rather than hundreds
// each handled up to the full budget. Another address (a neighbour, or a
// school's NAT other than the flooder's) keeps the full budget and its
// bucket. Neither bucket refills here, so that no timing decides.
func TestFloodingAddressSlowed(t *testing.T) {
	const connBurst = 40
	tp := newTestProxy(t, Config{ResetRate: 0.001, ResetBurst: 100, ResetHold: -1,
		ConnRatePerAddr: 0.001, ConnBurstPerAddr: connBurst})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	srv := httptest.NewUnstartedServer(tp.Proxy)
	srv.Listener = tp.LimitTLSListener(srv.Listener) // as deploy/proxyserver's TLS listener
	srv.EnableHTTP2 = true
	srv.Config.ConnContext = tp.ConnContext
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")

	const flooder, other = "127.0.0.6", "127.0.0.7"
	run := func(from string, streams int, wait time.Duration) h2flood.Result {
		t.Helper()
		res, err := h2flood.Run(t.Context(), h2flood.Options{Addr: addr, From: from,
			Host: "nairobi.school.localhost", Streams: streams, Wait: wait})
		if err != nil {
			t.Fatalf("a connection from %s: %v", from, err)
		}
		return res
	}
	// The first flooding connection spends the full budget.
	if res := run(flooder, 1000, 10*time.Second); !res.GoAway {
		t.Fatalf("the first flooding connection: %d reset streams and no GOAWAY", res.Streams)
	}
	// Its address's next connection is told GOAWAY past FloodBurst; the
	// same few resets from another address are within its budget.
	if res := run(flooder, FloodBurst+1, 10*time.Second); !res.GoAway {
		t.Errorf("the flooding address's next connection: %d reset streams and no GOAWAY, want one past %d", res.Streams, FloodBurst)
	}
	if res := run(other, FloodBurst+1, time.Second); res.GoAway {
		t.Errorf("another address was told GOAWAY after %d reset streams, want its full budget", res.Streams)
	}
	eventually(t, "the flood's requests finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d reset streams reached the app, want none", n)
	}

	// handshakes counts the TLS connections from the address from that
	// complete a handshake, of tries.
	handshakes := func(from string, tries int) int {
		t.Helper()
		ok := 0
		for range tries {
			d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}},
				Config: &tls.Config{InsecureSkipVerify: true, ServerName: "nairobi.school.localhost"}}
			c, err := d.DialContext(t.Context(), "tcp", addr)
			if err == nil {
				ok++
				c.Close()
			}
		}
		return ok
	}
	// The flooder has spent 1 + FloodConnCost of its bucket: what is left
	// buys (connBurst-1-FloodConnCost)/FloodConnCost more connections.
	want := (connBurst - 1 - FloodConnCost) / FloodConnCost
	if got := handshakes(flooder, want+3); got != want {
		t.Errorf("the flooding address opened %d new connections, want %d (each costs %d of %d)", got, want, FloodConnCost, connBurst)
	}
	if got := handshakes(other, 10); got != 10 {
		t.Errorf("another address opened %d of 10 new connections, want all (its bucket is its own)", got)
	}
}
