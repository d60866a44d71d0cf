package consul

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, for dashboards and alerts.
const (
	// MetricWatchErrors counts failed watch queries, by source ("kv" or
	// "catalog").
	MetricWatchErrors = "campus_registry_watch_errors_total"
	// MetricWatchReconnects counts blocking queries abandoned because no
	// answer came within WatchWait plus its margin (a stale connection).
	MetricWatchReconnects = "campus_registry_watch_reconnects_total"
	// MetricLastUpdate is the Unix time of the oldest of the sources'
	// last successful answers: time() minus it is the watcher's staleness.
	MetricLastUpdate = "campus_registry_last_update_timestamp_seconds"
	// MetricLastIndex is the last Consul index seen, by source: "kv" and
	// "catalog".
	MetricLastIndex = "campus_registry_last_index"
)

type metrics struct {
	errors     *prometheus.CounterVec
	reconnects prometheus.Counter
	lastUpdate prometheus.Gauge
	lastIndex  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricWatchErrors,
			Help: "Failed Consul watch queries, by source (kv, catalog).",
		}, []string{"source"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricWatchReconnects,
			Help: "Consul blocking queries abandoned for lack of an answer within the wait plus margin.",
		}),
		lastUpdate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricLastUpdate,
			Help: "Unix time of the older of the Consul watch sources' last successful answers.",
		}),
		lastIndex: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricLastIndex,
			Help: "Last Consul index (X-Consul-Index) seen by the watcher, by source.",
		}, []string{"source"}),
	}
	for _, s := range []string{srcKV, srcCatalog} {
		m.errors.WithLabelValues(s)
		m.lastIndex.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.errors = register(reg, m.errors, &err)
	m.reconnects = register(reg, m.reconnects, &err)
	m.lastUpdate = register(reg, m.lastUpdate, &err)
	m.lastIndex = register(reg, m.lastIndex, &err)
	return m, err
}

// register registers c, or returns the collector already registered under
// the same description (a second Registry in one process shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}
