package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

// Issue 25 point 3: a malformed request body is the client's error: a 400
// from the proxy, counted as the tenant's 400, never as the school's 5xx
// nor an upstream error (which feed the "proxy 5xx" alert), and a small
// one never reaches the app.
func TestMalformedBodyIsClientError(t *testing.T) {
	tp := newTestProxy(t, Config{})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	const head = "POST /admin/login/ HTTP/1.1\r\nHost: nairobi.school.localhost\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\n"
	chunked := head + "Transfer-Encoding: chunked\r\n\r\n"
	cases := []struct {
		name, raw string
		halfClose bool // the client stops sending (a body short of its length)
	}{
		{"chunk size 0x0", chunked + "0x0\r\n\r\n", false},
		{"overflowing hex chunk size", chunked + "5\r\nuser=\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n", false},
		{"bare LF after the chunk size", chunked + "5\nuser=\n0\n\n", false},
		{"body short of its Content-Length", head + "Content-Length: 100\r\n\r\nuser=admin", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tp.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(conn, c.raw); err != nil {
				t.Fatal(err)
			}
			if c.halfClose {
				_ = conn.(*net.TCPConn).CloseWrite()
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "arrived broken") {
				t.Errorf("status %d, want 400 with the proxy's page:\n%.300s", resp.StatusCode, body)
			}
		})
	}
	eventually(t, "every request finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d malformed requests reached the app; the proxy reads a small body before it picks an instance", n)
	}
	for _, why := range reasons {
		if got := testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", why)); got != 0 {
			t.Errorf("upstream errors {reason=%s} = %v, want 0: the client's broken body is no upstream error", why, got)
		}
	}
	for code, want := range map[string]float64{"400": float64(len(cases)), "502": 0, "504": 0} {
		if got := testutil.ToFloat64(tp.metrics.requests.WithLabelValues("nairobi", code)); got != want {
			t.Errorf("requests {code=%s} = %v, want %v", code, got, want)
		}
	}
}

// A body longer than what the proxy reads ahead is streamed on, whole; one
// that breaks after that point is still the client's 400.
func TestLongBodyStreamedAndLateBreakIsClientError(t *testing.T) {
	tp := newTestProxy(t, Config{})
	up := newUpstream(t, "nairobi", "n1")
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	long := strings.Repeat("0123456789", preReadLimit/5)
	for _, chunked := range []bool{false, true} {
		r := tp.do(t, request{method: http.MethodPost, host: "nairobi.school.localhost", body: long, chunked: chunked})
		if r.status != 200 || r.echo(t).Body != long {
			t.Fatalf("chunked %v: status %d, body of %d bytes arrived", chunked, r.status, len(r.echo(t).Body))
		}
	}
	conn, err := net.Dial("tcp", tp.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	chunk := strings.Repeat("x", 4096)
	var b strings.Builder
	b.WriteString("POST / HTTP/1.1\r\nHost: nairobi.school.localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 2 * preReadLimit / len(chunk) {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	b.WriteString("0x0\r\n\r\n")
	go io.WriteString(conn, b.String())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body broken after %d bytes: %d, want 400", 2*preReadLimit, resp.StatusCode)
	}
	eventually(t, "every request finished", func() bool { return testutil.ToFloat64(tp.metrics.inFlight) == 0 })
	if got := testutil.ToFloat64(tp.metrics.upstreamErrors.WithLabelValues("nairobi", ReasonOther)); got != 0 {
		t.Errorf("upstream errors = %v, want 0", got)
	}
}

// A body the proxy read ahead is still sent again after a failed dial:
// nothing of it reached an app.
func TestReadAheadBodyRetriedAfterDialError(t *testing.T) {
	for i := range 6 { // a fresh proxy each time: which instance comes first varies
		tp := newTestProxy(t, Config{})
		live := newUpstream(t, "nairobi", "live")
		tp.Update(registry.Snapshot{Version: 1,
			Tenants: []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
			Instances: []registry.Instance{
				{ID: "dead1", Tenant: "nairobi", Addr: deadAddr(t), Healthy: true},
				{ID: "dead2", Tenant: "nairobi", Addr: deadAddr(t), Healthy: true},
				live.instance(),
			}})
		for _, chunked := range []bool{false, true} {
			r := tp.do(t, request{method: http.MethodPost, host: "nairobi.school.localhost", body: "name=Amina", chunked: chunked})
			if r.status != 200 || r.echo(t).Body != "name=Amina" {
				t.Fatalf("round %d, chunked %v: %d %.200s", i, chunked, r.status, r.body)
			}
		}
	}
}
