package proxy

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the operator endpoints, for a listener that is not
// reachable by the public (default 127.0.0.1:8001):
//
//	/metrics  Prometheus metrics gathered from g (nil: the proxy's own
//	          registry when Config.Registerer was nil)
//	/healthz  200 once a first routing table has loaded, 503 before. A proxy
//	          whose registry watch fails keeps serving its last table and
//	          stays healthy (taking every proxy out of a load balancer because
//	          the registry is down would turn a control-plane outage into a
//	          full one); the body reports the table's age and the last watch
//	          error, and /metrics has the table's last update time to alert on.
//	/routes   the current table as JSON
func (p *Proxy) AdminHandler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = p.gatherer
	}
	if g == nil {
		g = prometheus.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", p.serveHealth)
	mux.HandleFunc("GET /routes", p.serveRoutes)
	return mux
}

// Health is the /healthz body.
type Health struct {
	Status          string  `json:"status"` // "ok" or "starting"
	TableVersion    uint64  `json:"table_version"`
	TableAgeSeconds float64 `json:"table_age_seconds"`
	WatchError      string  `json:"watch_error,omitempty"` // last registry watch error, cleared on success
}

func (p *Proxy) serveHealth(w http.ResponseWriter, r *http.Request) {
	t := p.table.Load()
	h := Health{Status: "ok", TableVersion: t.version}
	if e := p.watchErr.Load(); e != nil {
		h.WatchError = *e
	}
	code := http.StatusOK
	if t.seq == 0 {
		h.Status, code = "starting", http.StatusServiceUnavailable
	} else {
		h.TableAgeSeconds = time.Since(t.builtAt).Seconds()
	}
	writeJSON(w, code, h)
}

// Routes is the /routes body.
type Routes struct {
	Version       uint64               `json:"version"`        // registry snapshot version of the table
	LatestVersion uint64               `json:"latest_version"` // latest snapshot seen (unchanged ones are not rebuilt)
	Table         uint64               `json:"table"`          // tables published since start
	BuiltAt       time.Time            `json:"built_at"`       // zero before the first table
	AgeSeconds    float64              `json:"age_seconds"`    //
	Hosts         map[string]RouteInfo `json:"hosts"`          // normalised host → route
	InFlight      int64                `json:"in_flight"`      // requests at this table's instances
	WatchError    string               `json:"watch_error,omitempty"`
}

// RouteInfo describes one host's route in /routes.
type RouteInfo struct {
	Tenant      string         `json:"tenant"`
	DisplayName string         `json:"display_name"`
	State       string         `json:"state"`
	Instances   []InstanceInfo `json:"instances"`
	// Scale to zero (issue 12): running, starting, idle or unhealthy for
	// an active tenant (see routeStatus), and the requests held for it.
	Status string `json:"status,omitempty"`
	Held   int64  `json:"held,omitempty"`
}

// InstanceInfo describes one instance in /routes.
type InstanceInfo struct {
	ID                string `json:"id"`
	Addr              string `json:"addr"`
	Healthy           bool   `json:"healthy"`             // as registered
	RecentDialFailure bool   `json:"recent_dial_failure"` // passive health: skipped while others are left
	InFlight          int64  `json:"in_flight"`           //
}

func (p *Proxy) serveRoutes(w http.ResponseWriter, r *http.Request) {
	t := p.table.Load()
	out := Routes{
		Version:       t.version,
		LatestVersion: p.seenVersion.Load(),
		Table:         t.seq,
		Hosts:         make(map[string]RouteInfo, len(t.routes)),
	}
	if t.seq > 0 {
		out.BuiltAt, out.AgeSeconds = t.builtAt, time.Since(t.builtAt).Seconds()
	}
	if e := p.watchErr.Load(); e != nil {
		out.WatchError = *e
	}
	now := time.Now().UnixNano()
	seen := map[*instance]bool{}
	for host, rt := range t.routes {
		info := RouteInfo{Tenant: rt.tenant.name, DisplayName: rt.displayName, State: string(rt.state),
			Instances: []InstanceInfo{}, Status: routeStatus(rt, time.Unix(0, now)), Held: rt.tenant.held.Load()}
		for _, in := range rt.instances {
			n := in.inFlight.Load()
			info.Instances = append(info.Instances, InstanceInfo{ID: in.id, Addr: in.addr, Healthy: in.healthy,
				RecentDialFailure: in.down(now), InFlight: n})
			if !seen[in] {
				seen[in] = true
				out.InFlight += n
			}
		}
		slices.SortFunc(info.Instances, func(a, b InstanceInfo) int { return strings.Compare(a.ID, b.ID) })
		out.Hosts[host] = info
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
