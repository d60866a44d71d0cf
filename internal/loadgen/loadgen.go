// Package loadgen is a small closed-loop HTTP load generator for comparing
// the proxy with direct access to an app (`campus-bench`). Each of
// Concurrency workers sends a request, waits for the whole response, and
// sends the next, until Duration passes or MaxRequests have been sent.
// It only talks to loopback addresses.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Defaults and bounds for Config.
const (
	DefaultConcurrency = 8
	DefaultDuration    = 5 * time.Second
	MaxDuration        = 10 * time.Minute
	DefaultMaxRequests = 1_000_000
	MaxConcurrency     = 1024
)

// Config describes one load run.
type Config struct {
	Target      string        // URL to GET; its host must be loopback (127.0.0.0/8, ::1, localhost, *.localhost)
	Targets     []string      // if set, instead of Target: each request GETs the next of these, in turn (each checked as Target)
	Host        string        // Host header to send instead of the URL's (e.g. nairobi.school.localhost)
	Concurrency int           // workers, each with one request in flight (default 8, at most 1024)
	Duration    time.Duration // stop after this long (default 5s, at most 10m)
	MaxRequests int           // stop after this many requests (default 1,000,000)
	Client      *http.Client  // nil: a loopback-only client sized for Concurrency
}

// Result summarises a run. Latencies are over answered requests (any
// status); Requests counts answers and errors.
type Result struct {
	Requests int
	Errors   int // transport errors (no response)
	Non2xx   int // responses outside 200-299
	Elapsed  time.Duration
	RPS      float64
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	Max      time.Duration
}

// Run sends load as configured and returns the measurements. Requests cut
// short when Duration ends are not counted. If ctx ends first, Run returns
// what it measured so far with ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = []string{cfg.Target}
	}
	for _, t := range targets {
		if err := checkTarget(t); err != nil {
			return Result{}, err
		}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	cfg.Concurrency = min(cfg.Concurrency, MaxConcurrency)
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	cfg.Duration = min(cfg.Duration, MaxDuration)
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultMaxRequests
	}
	client := cfg.Client
	if client == nil {
		tr := loopbackTransport(cfg.Concurrency)
		defer tr.CloseIdleConnections()
		client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		claimed atomic.Int64
		wg      sync.WaitGroup
		workers = make([]worker, cfg.Concurrency)
	)
	start := time.Now()
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for n := claimed.Add(1); n <= int64(cfg.MaxRequests) && runCtx.Err() == nil; n = claimed.Add(1) {
				w.do(runCtx, client, cfg, targets[(n-1)%int64(len(targets))])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var res Result
	var lat []time.Duration
	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errors
		res.Non2xx += w.non2xx
		lat = append(lat, w.latencies...)
	}
	res.Elapsed = elapsed
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, ctx.Err()
}

// worker is one closed loop's tallies; only its goroutine touches it.
type worker struct {
	requests, errors, non2xx int
	latencies                []time.Duration
}

func (w *worker) do(ctx context.Context, client *http.Client, cfg Config, target string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		w.requests++
		w.errors++
		return
	}
	if cfg.Host != "" {
		req.Host = cfg.Host
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	d := time.Since(t0)
	if ctx.Err() != nil {
		return // cut short by the end of the run: not a measurement
	}
	w.requests++
	if err != nil {
		w.errors++
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		w.non2xx++
	}
	w.latencies = append(w.latencies, d)
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100), 1-based rank
	return sorted[max(i-1, 0)]
}

// checkTarget accepts http(s) URLs on loopback hosts only.
func checkTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("loadgen: parse target: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("loadgen: target %q: want an http or https URL", target)
	}
	if !loopbackHost(u.Hostname()) {
		return fmt.Errorf("loadgen: target %q is not a loopback address; load is only sent to this machine", target)
	}
	return nil
}

func loopbackHost(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

var errNotLoopback = errors.New("loadgen: refusing to dial a non-loopback address")

// loopbackTransport dials loopback only, sending localhost and *.localhost
// names to 127.0.0.1 (Go's resolver does not), with an idle pool sized for
// the workers.
func loopbackTransport(concurrency int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if !loopbackHost(host) {
				return nil, fmt.Errorf("%w: %s", errNotLoopback, addr)
			}
			if net.ParseIP(host) == nil {
				host = "127.0.0.1"
			}
			return d.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// Row is one line of a comparison table.
type Row struct {
	Name   string
	Result Result
}

// WriteTable prints rows as an aligned table; ratio is each row's
// requests per second relative to the first row's.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "name\trequests\trps\tp50\tp90\tp99\tmax\terrors\tnon-2xx\tratio\n")
	for _, r := range rows {
		ratio := "-"
		if base := rows[0].Result.RPS; base > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Result.RPS/base)
		}
		res := r.Result
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Name, res.Requests, res.RPS,
			ms(res.P50), ms(res.P90), ms(res.P99), ms(res.Max), res.Errors, res.Non2xx, ratio)
	}
	return tw.Flush()
}

// ms formats a latency in milliseconds with three decimals.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}
