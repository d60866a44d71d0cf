package main

import (
	"testing"
	"time"
)

// TestParseWrk reads wrk's --latency report, units and error lines
// included, and refuses output that is not one.
func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name, out        string
		requests, errors int
		non2xx           int
		p50, p99, max    time.Duration
		rps              float64
		bad              bool
	}{{
		name: "clean run",
		out: `Running 3s test @ http://127.0.0.1:1/healthz
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   497.15us  813.95us  21.97ms   95.64%
    Req/Sec    28.52k     1.93k   31.08k    83.33%
  Latency Distribution
     50%  365.00us
     75%  512.00us
     90%    1.84ms
     99%    5.15ms
  85157 requests in 3.00s, 9.83MB read
Requests/sec:  28374.12
Transfer/sec:      3.28MB
`,
		requests: 85157, p50: 365 * time.Microsecond, p99: 5150 * time.Microsecond, max: 21970 * time.Microsecond, rps: 28374.12,
	}, {
		name: "errors and non-2xx, latency in seconds",
		out: `  Latency Distribution
     50%    1.20s
     90%    1.50s
     99%    2.00s
  120 requests in 1.00m, 1.00KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:      2.00
`,
		requests: 120, errors: 10, non2xx: 7, p50: 1200 * time.Millisecond, p99: 2 * time.Second, rps: 2,
	}, {
		name: "not wrk", out: "wrk: command failed\n", bad: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseWrk(tc.out)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseWrk accepted %q: %+v", tc.out, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != tc.requests || r.Errors != tc.errors || r.Non2xx != tc.non2xx ||
				r.P50 != tc.p50 || r.P99 != tc.p99 || r.Max != tc.max || r.RPS != tc.rps {
				t.Errorf("parseWrk = %+v", r)
			}
		})
	}
}
