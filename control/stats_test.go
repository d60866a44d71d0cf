package control

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/campus-saas/campus/proxy"
)

// TestStatsFollowsProxyCounters reads counters in the proxy's exposition
// (its metric names and labels) from two proxies, one restarting.
func TestStatsFollowsProxyCounters(t *testing.T) {
	type fake struct {
		reqs *prometheus.CounterVec
		dur  *prometheus.HistogramVec
		srv  *httptest.Server
	}
	mk := func() *fake {
		reg := prometheus.NewRegistry()
		f := &fake{
			reqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: proxy.MetricRequests}, []string{proxy.LabelTenant, proxy.LabelCode}),
			dur:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: proxy.MetricRequestDuration, Buckets: []float64{.1, .5, 1}}, []string{proxy.LabelTenant}),
		}
		reg.MustRegister(f.reqs, f.dur)
		f.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		t.Cleanup(f.srv.Close)
		return f
	}
	p1, p2 := mk(), mk()
	now := time.Date(2026, 12, 6, 10, 0, 5, 0, time.UTC)
	s := &Stats{Now: func() time.Time { return now }, Sources: func(context.Context) ([]string, error) {
		return []string{p1.srv.URL, p2.srv.URL}, nil
	}}
	scrape := func() {
		t.Helper()
		if err := s.Scrape(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	p1.reqs.WithLabelValues("accra", "200").Add(1000) // before the first scrape: not counted
	scrape()
	now = now.Add(10 * time.Second)
	p1.reqs.WithLabelValues("accra", "200").Add(90)
	p1.reqs.WithLabelValues("accra", "503").Add(10)
	p2.reqs.WithLabelValues("accra", "200").Add(100)
	p2.reqs.WithLabelValues("other", "200").Add(7)
	for i := 0; i < 99; i++ {
		p1.dur.WithLabelValues("accra").Observe(0.05)
	}
	p1.dur.WithLabelValues("accra").Observe(0.7)
	scrape()
	st := s.School("accra")
	if st.RequestsPerSecond != 20 || st.ErrorRatio != 0.05 {
		t.Errorf("accra: %.2f req/s, 5xx %.3f; want 20 and 0.05", st.RequestsPerSecond, st.ErrorRatio)
	}
	if st.P99Seconds <= 0 || st.P99Seconds > 0.1 {
		t.Errorf("p99 %.3f, want within the first bucket (≤ 0.1)", st.P99Seconds)
	}
	if got := st.Requests[Slots-1]; got != 200 || st.Errors[Slots-1] != 10 {
		t.Errorf("this minute: %v requests, %v errors", got, st.Errors[Slots-1])
	}
	if o := s.School("other"); o.Requests[Slots-1] != 7 {
		t.Errorf("other school: %v (one school's counters must not leak into another's)", o.Requests[Slots-1])
	}
	// A minute later p1 restarted (its counters start again).
	now = now.Add(time.Minute)
	p1.reqs.Reset()
	p1.reqs.WithLabelValues("accra", "200").Add(5)
	scrape()
	st = s.School("accra")
	if st.Requests[Slots-1] != 5 || st.Requests[Slots-2] != 200 {
		t.Errorf("after a restart: last two minutes %v, %v; want 200, 5", st.Requests[Slots-2], st.Requests[Slots-1])
	}
	// accra leaves the proxies (deleted): no rate any more, and an hour
	// later it is forgotten.
	p1.reqs.Reset()
	p2.reqs.Reset()
	p1.dur.Reset()
	now = now.Add(15 * time.Second)
	scrape()
	if st := s.School("accra"); st.RequestsPerSecond != 0 || st.P99Seconds != 0 || st.Requests[Slots-1] != 5 {
		t.Errorf("after accra left: %.2f req/s, p99 %.3f, this minute %v", st.RequestsPerSecond, st.P99Seconds, st.Requests[Slots-1])
	}
	now = now.Add(time.Hour)
	scrape()
	if st := s.School("accra"); st.Requests[Slots-1] != 0 || st.Requests[0] != 0 {
		t.Errorf("an hour later: %v", st.Requests)
	}
	if n := len(s.schools); n != 0 {
		t.Errorf("%d schools still kept an hour after they left", n)
	}
}
