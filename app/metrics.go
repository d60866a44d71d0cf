package app

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/store"
)

// Metric names, exported so that dashboards and alerts built in Go use the
// same strings as the code. Every metric carries the label "tenant".
const (
	MetricRequests        = "campus_app_requests_total"           // labels: tenant, route, code
	MetricRequestDuration = "campus_app_request_duration_seconds" // labels: tenant, route
	MetricStudents        = "campus_app_students"                 // labels: tenant
	MetricLoginFailures   = "campus_app_login_failures_total"     // labels: tenant
	// MetricWriteErrors counts the writes of the tenant's store (requests
	// and background work alike) that the database refused for lack of
	// space, by reason (store.StorageReasons: sqlite_full on campus dev's
	// FerretDB, out_of_disk_space on MongoDB); every reason from 0.
	MetricWriteErrors = "campus_app_write_errors_total" // labels: tenant, reason
	LabelReason       = "reason"
)

// Route label values for requests that matched no route pattern.
const (
	routeMisdirected = "_misdirected" // refused by the host / tenant check
	routeNotFound    = "_notfound"    // no route matched
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	students      prometheus.Gauge
	loginFailures prometheus.Counter
}

// writeErrors exposes the store's count of writes refused for lack of
// space (the store counts them; it has no Prometheus of its own).
type writeErrors struct {
	desc  *prometheus.Desc
	store *store.Store
}

func (c writeErrors) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c writeErrors) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.store.StorageFullErrors() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}

// newMetrics registers the app's collectors for one tenant. Several tenants'
// servers may share one Registerer: the tenant is a constant label.
func newMetrics(reg prometheus.Registerer, tenant string, st *store.Store) (*metrics, error) {
	labels := prometheus.Labels{"tenant": tenant}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        MetricRequests,
			Help:        "HTTP requests served by the app, by route pattern and status code.",
			ConstLabels: labels,
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        MetricRequestDuration,
			Help:        "Time to serve an HTTP request, by route pattern.",
			ConstLabels: labels,
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		students: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        MetricStudents,
			Help:        "Students in the tenant's register (refreshed after writes and at most every 30s by reads).",
			ConstLabels: labels,
		}),
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        MetricLoginFailures,
			Help:        "Failed admin login attempts, lock-outs included.",
			ConstLabels: labels,
		}),
	}
	werr := writeErrors{store: st, desc: prometheus.NewDesc(MetricWriteErrors,
		"Writes the database refused because the disk holding it is full, by reason.",
		[]string{LabelReason}, labels)}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.students, m.loginFailures, werr} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register app metrics for tenant %s: %w", tenant, err)
		}
	}
	return m, nil
}
