package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var hits, wrongHost atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.Host != "nairobi.school.localhost" {
			wrongHost.Add(1)
		}
		if n%4 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)

	res, err := Run(context.Background(), Config{Target: srv.URL + "/students", Host: "nairobi.school.localhost",
		Concurrency: 4, Duration: time.Minute, MaxRequests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || hits.Load() != 200 || res.Errors != 0 || res.Non2xx != 50 {
		t.Fatalf("result %+v after %d hits; want 200 requests, 50 non-2xx, no errors", res, hits.Load())
	}
	if wrongHost.Load() != 0 {
		t.Errorf("%d requests without the Host override", wrongHost.Load())
	}
	if !(0 < res.P50 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) || res.RPS <= 0 {
		t.Errorf("latencies out of order or missing: %+v", res)
	}
}

// Targets are sent in turn, each as often as the others; one that is
// not loopback refuses the whole run.
func TestRunTargetsInTurn(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.RequestURI()]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	targets := []string{srv.URL + "/?q=a", srv.URL + "/?q=b", srv.URL + "/?page=3"}
	res, err := Run(context.Background(), Config{Targets: targets, Concurrency: 3, Duration: time.Minute, MaxRequests: 90})
	if err != nil || res.Requests != 90 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if len(seen) != 3 || seen["/?q=a"] != 30 || seen["/?q=b"] != 30 || seen["/?page=3"] != 30 {
		t.Errorf("requests per target %v, want 30 each", seen)
	}
	if _, err := Run(context.Background(), Config{Targets: append(targets, "http://example.com/"), MaxRequests: 1}); err == nil {
		t.Error("a non-loopback target among others was accepted")
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	res, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: 2, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Requests >= DefaultMaxRequests || res.Errors != 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestRunCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := Run(context.Background(), Config{Target: "http://" + addr + "/", Concurrency: 2, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 10 || res.Errors != 10 || res.P50 != 0 {
		t.Fatalf("result %+v, want 10 requests, all errors", res)
	}
}

func TestRunLocalhostNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	res, err := Run(context.Background(), Config{Target: "http://accra.school.localhost:" + port + "/", MaxRequests: 5})
	if err != nil || res.Errors != 0 || res.Requests != 5 {
		t.Fatalf("*.localhost target: %+v, %v", res, err)
	}
}

func TestRunRejectsNonLoopback(t *testing.T) {
	for _, target := range []string{"http://example.com/", "http://10.0.0.1:8000/", "http://localhost.example.com/",
		"ftp://127.0.0.1/", "http://[2001:db8::1]/", "not a url\x7f"} {
		if _, err := Run(context.Background(), Config{Target: target, MaxRequests: 1}); err == nil {
			t.Errorf("Run(%q) succeeded; want a refusal", target)
		}
	}
}

func TestRunHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Target: srv.URL, Duration: time.Minute}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}}
	for _, tt := range tests {
		if got := percentile(lat, tt.p); got != tt.want {
			t.Errorf("p%d = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one = %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	err := WriteTable(&buf, []Row{
		{"direct", Result{Requests: 10000, RPS: 20000, P50: 400 * time.Microsecond, P90: 700 * time.Microsecond,
			P99: 1500 * time.Microsecond, Max: 9 * time.Millisecond}},
		{"proxied", Result{Requests: 5000, RPS: 10000, P50: 800 * time.Microsecond, P90: time.Millisecond,
			P99: 3 * time.Millisecond, Max: 12 * time.Millisecond, Errors: 2, Non2xx: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `name     requests  rps    p50      p90      p99      max       errors  non-2xx  ratio
direct   10000     20000  0.400ms  0.700ms  1.500ms  9.000ms   0       0        1.00x
proxied  5000      10000  0.800ms  1.000ms  3.000ms  12.000ms  2       1        0.50x
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}
