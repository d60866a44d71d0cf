package supervisor

import "github.com/prometheus/client_golang/prometheus"

// Metric names, for dashboards and alerts.
const (
	// MetricChildrenRunning is a gauge: child processes alive now.
	MetricChildrenRunning = "campus_supervisor_children_running"
	// MetricRestartsTotal counts restarts per tenant (label "tenant").
	MetricRestartsTotal = "campus_supervisor_restarts_total"
	// MetricStartSeconds is a histogram of the time from starting a
	// child to its first 200 from /readyz.
	MetricStartSeconds = "campus_supervisor_start_seconds"
)

type metrics struct {
	running      prometheus.Gauge
	restarts     *prometheus.CounterVec
	startSeconds prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricChildrenRunning,
			Help: "Number of app child processes currently running.",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRestartsTotal,
			Help: "Number of times a tenant's app child process was started again after it ended.",
		}, []string{"tenant"}),
		startSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricStartSeconds,
			Help:    "Time from starting an app child process to its first successful /readyz.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.running, m.restarts, m.startSeconds} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// forget drops the series of a deleted tenant.
func (m *metrics) forget(tenant string) { m.restarts.DeleteLabelValues(tenant) }
