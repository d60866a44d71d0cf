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

	// Scale to zero and liveness (issue 12).

	// MetricTenants is a gauge of the tenant slots by state (label
	// "state": starting, ready, unhealthy, backoff, idle, stopping);
	// running = ready + unhealthy.
	MetricTenants = "campus_supervisor_tenants"
	// MetricColdStartsTotal counts starts that answered a wake of an idle
	// tenant.
	MetricColdStartsTotal = "campus_supervisor_cold_starts_total"
	// MetricWakeSeconds is a histogram of the time from a wake of an idle
	// tenant to its instance being registered (ready).
	MetricWakeSeconds = "campus_supervisor_wake_to_ready_seconds"
	// MetricIdleStopsTotal counts children stopped for being idle.
	MetricIdleStopsTotal = "campus_supervisor_idle_stops_total"
	// MetricLivenessRestartsTotal counts hung children killed and
	// replaced.
	MetricLivenessRestartsTotal = "campus_supervisor_liveness_restarts_total"
	// MetricStartsWaiting is a gauge of starts waiting for a slot
	// (Config.MaxStarts).
	MetricStartsWaiting = "campus_supervisor_starts_waiting"
	// MetricPoolReady is a gauge of pre-started processes bound to no
	// tenant yet; MetricPoolBoundTotal counts those bound to one.
	MetricPoolReady      = "campus_supervisor_pool_ready"
	MetricPoolBoundTotal = "campus_supervisor_pool_bound_total"

	// Memory budget (issue 20).

	// MetricMemoryKillsTotal counts app processes the kernel killed for
	// exceeding their memory limit (label "tenant").
	MetricMemoryKillsTotal = "campus_supervisor_memory_kills_total"
	// MetricEvictionsTotal counts running apps stopped to make room for a
	// woken one under the running cap (Config.MaxRunning).
	MetricEvictionsTotal = "campus_supervisor_evictions_total"
	// MetricStartsOverCap is a gauge of woken starts waiting for room
	// under the running cap.
	MetricStartsOverCap = "campus_supervisor_starts_over_cap"
)

type metrics struct {
	running      prometheus.Gauge
	restarts     *prometheus.CounterVec
	startSeconds prometheus.Histogram

	tenants          *prometheus.GaugeVec
	coldStarts       prometheus.Counter
	wakeSeconds      prometheus.Histogram
	idleStops        prometheus.Counter
	livenessRestarts prometheus.Counter
	startsWaiting    prometheus.Gauge
	poolReady        prometheus.Gauge
	poolBound        prometheus.Counter

	memoryKills   *prometheus.CounterVec
	evictions     prometheus.Counter
	startsOverCap prometheus.Gauge
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
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricTenants,
			Help: "Tenant slots of the supervisor by state (ready and unhealthy are running; idle have no process).",
		}, []string{"state"}),
		coldStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricColdStartsTotal,
			Help: "App starts that answered a wake of an idle tenant.",
		}),
		wakeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricWakeSeconds,
			Help:    "Time from a wake of an idle tenant to its instance being ready and registered.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		idleStops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricIdleStopsTotal,
			Help: "App child processes stopped because their tenant was idle.",
		}),
		livenessRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricLivenessRestartsTotal,
			Help: "Hung app child processes (readiness checks unanswered) killed and replaced.",
		}),
		startsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricStartsWaiting,
			Help: "App starts waiting for a start slot (the per-machine start cap).",
		}),
		poolReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricPoolReady,
			Help: "Pre-started app processes bound to no tenant yet.",
		}),
		poolBound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricPoolBoundTotal,
			Help: "Pre-started app processes bound to a tenant (for the rest of their life).",
		}),
		memoryKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricMemoryKillsTotal,
			Help: "App processes killed by the kernel for exceeding their memory limit.",
		}, []string{"tenant"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricEvictionsTotal,
			Help: "Running apps stopped (least recently used first) to make room for a woken one under the running cap.",
		}),
		startsOverCap: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricStartsOverCap,
			Help: "Woken app starts waiting for room under the running cap.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.running, m.restarts, m.startSeconds,
		m.tenants, m.coldStarts, m.wakeSeconds, m.idleStops, m.livenessRestarts, m.startsWaiting,
		m.poolReady, m.poolBound, m.memoryKills, m.evictions, m.startsOverCap} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// forget drops the series of a deleted tenant.
func (m *metrics) forget(tenant string) {
	m.restarts.DeleteLabelValues(tenant)
	m.memoryKills.DeleteLabelValues(tenant)
}
