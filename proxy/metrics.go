package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, exported so that dashboards, alerts and tests refer to the
// same strings as the code.
const (
	MetricRequests        = "campus_proxy_requests_total"
	MetricRequestDuration = "campus_proxy_request_duration_seconds"
	MetricUpstreamErrors  = "campus_proxy_upstream_errors_total"
	MetricRoutes          = "campus_proxy_routes"
	MetricTenantInstances = "campus_proxy_tenant_instances"
	MetricTableUpdates    = "campus_proxy_table_updates_total"
	MetricTableLastUpdate = "campus_proxy_table_last_update_timestamp_seconds"
	MetricInFlight        = "campus_proxy_in_flight"
	LabelTenant           = "tenant"
	LabelCode             = "code"
	LabelReason           = "reason"
	UnknownTenant         = "_unknown"    // tenant label of unknown and malformed hosts
	ReasonDial            = "dial"        // the instance could not be connected to
	ReasonTimeout         = "timeout"     // no response headers within UpstreamTimeout
	ReasonOther           = "other"       // any other transport error
	ReasonNoInstance      = "no_instance" // no healthy instance appeared within HoldTimeout
	StatusClientClosed    = 499           // recorded (never sent) when the client went away
)

// reasons in the order of tenantMetrics.errors.
var reasons = [...]string{ReasonDial, ReasonTimeout, ReasonOther, ReasonNoInstance}

type reason int

const (
	reasonDial reason = iota
	reasonTimeout
	reasonOther
	reasonNoInstance
)

func (r reason) String() string { return reasons[r] }

// metrics holds the proxy's collectors. Per-tenant children live in
// tenantMetrics, created when a tenant enters the table.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	upstreamErrors  *prometheus.CounterVec
	routes          prometheus.Gauge
	tenantInstances *prometheus.GaugeVec
	tableUpdates    prometheus.Counter
	tableLastUpdate prometheus.Gauge
	inFlight        prometheus.Gauge
	resetFloods     prometheus.Counter // abuse.go
	connsRefused    prometheus.Counter // connlimit.go
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "Requests answered by the proxy, by tenant and HTTP status (499: client went away).",
		}, []string{LabelTenant, LabelCode}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Time from receiving a request to finishing its response, in seconds.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{LabelTenant}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricUpstreamErrors,
			Help: "Failed attempts to reach a tenant's app, by reason (dial, timeout, other, no_instance).",
		}, []string{LabelTenant, LabelReason}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricRoutes,
			Help: "Host names in the current routing table.",
		}),
		tenantInstances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricTenantInstances,
			Help: "Healthy app instances per tenant in the current routing table.",
		}, []string{LabelTenant}),
		tableUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricTableUpdates,
			Help: "Routing tables published (unchanged snapshots are not counted).",
		}),
		tableLastUpdate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricTableLastUpdate,
			Help: "Unix time the current routing table was published.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricInFlight,
			Help: "Requests being handled by the proxy, including held ones.",
		}),
		resetFloods:  newResetFloods(),
		connsRefused: newConnsRefused(),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.upstreamErrors, m.routes,
		m.tenantInstances, m.tableUpdates, m.tableLastUpdate, m.inFlight, m.resetFloods, m.connsRefused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// tenantMetrics are the label children of one tenant, created once when the
// tenant first appears in a table (not per request) and deleted when it
// leaves.
type tenantMetrics struct {
	requests  *prometheus.CounterVec // curried with the tenant; code varies per request
	byCode    *codeCounters          // requests' children of the usual codes, once used
	duration  prometheus.Observer
	errors    [len(reasons)]prometheus.Counter
	instances prometheus.Gauge
}

func (m *metrics) forTenant(name string) tenantMetrics {
	tm := tenantMetrics{
		requests: m.requests.MustCurryWith(prometheus.Labels{LabelTenant: name}),
		byCode:   &codeCounters{},
		duration: m.duration.WithLabelValues(name),
	}
	for i, r := range reasons {
		tm.errors[i] = m.upstreamErrors.WithLabelValues(name, r)
	}
	if name != UnknownTenant {
		tm.instances = m.tenantInstances.WithLabelValues(name)
	}
	return tm
}

// request counts one answered request: for the usual codes without a
// label lookup after the first (the child is kept once resolved; forget
// drops it with the tenant's tenantState).
func (tm *tenantMetrics) request(code int) {
	slot := 0
	if code >= 0 && code < len(codeSlots) {
		slot = int(codeSlots[code])
	}
	if slot == 0 {
		tm.requests.WithLabelValues(codeLabel(code)).Inc()
		return
	}
	c := tm.byCode.c[slot].Load()
	if c == nil {
		counter := tm.requests.WithLabelValues(codeLabel(code))
		c = &counter
		tm.byCode.c[slot].Store(c)
	}
	(*c).Inc()
}

// usualCodes are the status codes whose counters a tenant keeps at hand.
var usualCodes = [...]int{200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405,
	413, 421, 429, StatusClientClosed, 500, 502, 503, 504}

// codeSlots maps a status code to its slot in codeCounters (0: none).
var codeSlots = func() (s [600]uint8) {
	for i, c := range usualCodes {
		s[c] = uint8(i + 1)
	}
	return s
}()

// codeCounters holds one tenant's request counters of the usual codes.
type codeCounters struct {
	c [len(usualCodes) + 1]atomic.Pointer[prometheus.Counter]
}

// forget deletes every label child of a tenant that left the table.
func (m *metrics) forget(name string) {
	m.requests.DeletePartialMatch(prometheus.Labels{LabelTenant: name})
	m.duration.DeleteLabelValues(name)
	m.upstreamErrors.DeletePartialMatch(prometheus.Labels{LabelTenant: name})
	m.tenantInstances.DeleteLabelValues(name)
}

// codeLabel returns the code label value without allocating.
func codeLabel(code int) string {
	if code >= 0 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}

var codeLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()
