package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/proxy"
)

// Stats follows the proxies' own counters (their admin /metrics) for the
// school view and the console's sparklines. Every Interval it reads each
// proxy's metrics, sums them per school, and keeps per school a ring of
// Slots one-minute buckets (requests and 5xx answers) plus what the last
// interval saw (requests per second, the p99 of the request duration
// histogram) and the earliest certificate expiry.
//
// Counters are read as deltas from the previous scrape of the same proxy;
// a proxy that restarted (a counter went down) counts from zero.
type Stats struct {
	// Sources returns the proxies' admin base URLs (http://host:port).
	Sources  func(ctx context.Context) ([]string, error)
	Interval time.Duration // default 15s
	Client   *http.Client  // default: 5 s timeout
	Logger   *slog.Logger
	Now      func() time.Time

	mu      sync.Mutex
	schools map[string]*series
	prev    map[string]map[string]scraped // source → tenant → last scrape
	last    time.Time
	lastErr string
}

// Slots is the number of one-minute buckets kept: the last hour.
const Slots = 60

type bucket struct {
	minute           int64 // Unix minute this bucket holds; 0: empty
	requests, errors float64
}

type series struct {
	ring       [Slots]bucket
	rps, p99   float64
	certExpiry time.Time
}

// scraped is one tenant's counters in one scrape of one proxy.
type scraped struct {
	requests, errors float64
	buckets          []float64 // cumulative counts per upper bound (bounds)
	bounds           []float64
	certExpiry       time.Time
}

// SchoolStats is what the school view shows of the proxies' counters.
type SchoolStats struct {
	RequestsPerSecond float64   `json:"requests_per_second"`
	P99Seconds        float64   `json:"p99_seconds"`          // 0 when no request was seen in the last interval
	ErrorRatio        float64   `json:"error_ratio_5xx"`      // 5xx / requests over the last 5 minutes
	CertExpiry        time.Time `json:"cert_expiry,omitzero"` // earliest among the school's hosts
	// Requests and Errors are per minute over the last hour, oldest first.
	Requests []float64 `json:"requests_per_minute"`
	Errors   []float64 `json:"errors_per_minute"`
}

func (s *Stats) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Run scrapes every Interval until ctx ends.
func (s *Stats) Run(ctx context.Context) {
	iv := s.Interval
	if iv <= 0 {
		iv = 15 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if err := s.Scrape(ctx); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.Warn("read the proxies' metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scrape reads every source once and folds what changed into the series.
func (s *Stats) Scrape(ctx context.Context) error {
	if s.Sources == nil {
		return nil
	}
	urls, err := s.Sources(ctx)
	if err != nil {
		return s.fail(fmt.Errorf("find the proxies: %w", err))
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	now := s.now()
	got := map[string]map[string]scraped{}
	var errs []error
	for _, u := range urls {
		m, err := scrape(ctx, client, u+"/metrics")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		got[u] = m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.schools == nil {
		s.schools = map[string]*series{}
	}
	elapsed := now.Sub(s.last).Seconds()
	minute := now.Unix() / 60
	type sums struct {
		requests, errors float64
		buckets, bounds  []float64
		cert             time.Time
	}
	per := map[string]*sums{}
	for src, tenants := range got {
		before := s.prev[src]
		for name, cur := range tenants {
			d := per[name]
			if d == nil {
				d = &sums{}
				per[name] = d
			}
			if !cur.certExpiry.IsZero() && (d.cert.IsZero() || cur.certExpiry.Before(d.cert)) {
				d.cert = cur.certExpiry
			}
			old, ok := before[name]
			if before == nil {
				continue // the first scrape of a proxy sets the baseline
			}
			if !ok || cur.requests < old.requests { // new tenant or restarted proxy
				old = scraped{}
			}
			d.requests += cur.requests - old.requests
			d.errors += max(cur.errors-old.errors, 0)
			if len(d.bounds) == 0 {
				d.bounds = cur.bounds
				d.buckets = make([]float64, len(cur.bounds))
			}
			if slices.Equal(d.bounds, cur.bounds) {
				for i := range cur.buckets {
					o := 0.0
					if len(old.buckets) == len(cur.buckets) {
						o = old.buckets[i]
					}
					d.buckets[i] += max(cur.buckets[i]-o, 0)
				}
			}
		}
	}
	for name, d := range per {
		se := s.schools[name]
		if se == nil {
			se = &series{}
			s.schools[name] = se
		}
		se.certExpiry = d.cert
		b := &se.ring[minute%Slots]
		if b.minute != minute {
			*b = bucket{minute: minute}
		}
		b.requests += d.requests
		b.errors += d.errors
		if !s.last.IsZero() && elapsed > 0 {
			se.rps, se.p99 = d.requests/elapsed, quantile(0.99, d.bounds, d.buckets)
		}
	}
	for name, se := range s.schools {
		if _, ok := per[name]; ok {
			continue
		}
		// No proxy counts it any more (deleted, or its proxies are
		// unreachable): no rate now, and forgotten once its hour is over.
		se.rps, se.p99 = 0, 0
		newest := int64(0)
		for _, b := range se.ring {
			newest = max(newest, b.minute)
		}
		if newest <= minute-Slots {
			delete(s.schools, name)
		}
	}
	for src, m := range got {
		if s.prev == nil {
			s.prev = map[string]map[string]scraped{}
		}
		s.prev[src] = m
	}
	s.last = now
	if len(errs) > 0 {
		s.lastErr = fmt.Sprint(errs)
		return fmt.Errorf("%v", errs)
	}
	s.lastErr = ""
	return nil
}

func (s *Stats) fail(err error) error {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
	return err
}

// School returns what the proxies' counters say about school name.
func (s *Stats) School(name string) SchoolStats {
	out := SchoolStats{Requests: make([]float64, Slots), Errors: make([]float64, Slots)}
	if s == nil {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.schools[name]
	if se == nil {
		return out
	}
	now := s.now().Unix() / 60
	var req5, err5 float64
	for i := 0; i < Slots; i++ {
		minute := now - int64(Slots-1-i)
		b := se.ring[minute%Slots]
		if b.minute != minute {
			continue
		}
		out.Requests[i], out.Errors[i] = b.requests, b.errors
		if i >= Slots-5 {
			req5 += b.requests
			err5 += b.errors
		}
	}
	if req5 > 0 {
		out.ErrorRatio = err5 / req5
	}
	out.RequestsPerSecond, out.P99Seconds, out.CertExpiry = se.rps, se.p99, se.certExpiry
	return out
}

// quantile estimates the q-quantile of a histogram's per-bucket counts
// (cumulative, by upper bound) as Prometheus's histogram_quantile does:
// linear within the bucket.
func quantile(q float64, bounds, cum []float64) float64 {
	if len(cum) == 0 || cum[len(cum)-1] == 0 {
		return 0
	}
	rank := q * cum[len(cum)-1]
	lower, prev := 0.0, 0.0
	for i, c := range cum {
		if c >= rank {
			if math.IsInf(bounds[i], 1) {
				return lower
			}
			if c == prev {
				return bounds[i]
			}
			return lower + (bounds[i]-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = bounds[i], c
	}
	return lower
}

// scrape reads one proxy's metrics: per tenant the answered requests, the
// 5xx among them, the duration histogram and the certificate expiry.
func scrape(ctx context.Context, client *http.Client, url string) (map[string]scraped, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]scraped{}
	tenantOf := func(m *dto.Metric) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == proxy.LabelTenant {
				return l.GetValue()
			}
		}
		return ""
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	if f := families[proxy.MetricRequests]; f != nil {
		for _, m := range f.GetMetric() {
			t := tenantOf(m)
			if t == "" || t == proxy.UnknownTenant {
				continue
			}
			sc := out[t]
			v := m.GetCounter().GetValue()
			sc.requests += v
			if code, _ := strconv.Atoi(label(m, proxy.LabelCode)); code >= 500 && code < 600 {
				sc.errors += v
			}
			out[t] = sc
		}
	}
	if f := families[proxy.MetricRequestDuration]; f != nil {
		for _, m := range f.GetMetric() {
			t := tenantOf(m)
			if t == "" || t == proxy.UnknownTenant {
				continue
			}
			sc := out[t]
			h := m.GetHistogram()
			sc.bounds, sc.buckets = nil, nil
			for _, b := range h.GetBucket() {
				sc.bounds = append(sc.bounds, b.GetUpperBound())
				sc.buckets = append(sc.buckets, float64(b.GetCumulativeCount()))
			}
			sc.bounds = append(sc.bounds, math.Inf(1))
			sc.buckets = append(sc.buckets, float64(h.GetSampleCount()))
			out[t] = sc
		}
	}
	if f := families[certs.MetricCertExpiry]; f != nil {
		for _, m := range f.GetMetric() {
			t := label(m, certs.LabelTenant)
			if t == "" {
				continue
			}
			sc := out[t]
			sc.certExpiry = time.Unix(int64(m.GetGauge().GetValue()), 0).UTC()
			out[t] = sc
		}
	}
	return out, nil
}
