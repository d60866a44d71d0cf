package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
)

const dashboardsDir = "deploy/grafana/dashboards"

// query is one PromQL expression of a dashboard.
type query struct {
	where string // dashboard and panel
	expr  string
}

// dashboardQueries reads every query of the JSON dashboards Grafana
// provisions: panel targets (rows included) and query variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	files, err := filepath.Glob(repoPath(dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s: %v", dashboardsDir, err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var out []query
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []json.RawMessage `json:"panels"`
			Templating struct {
				List []struct {
					Name  string          `json:"name"`
					Type  string          `json:"type"`
					Query json.RawMessage `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		var walk func(ps []json.RawMessage)
		walk = func(ps []json.RawMessage) {
			for _, rp := range ps {
				var p panel
				if err := json.Unmarshal(rp, &p); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, tg := range p.Targets {
					if tg.Expr != "" {
						out = append(out, query{where: name + ": " + p.Title, expr: tg.Expr})
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				var m struct {
					Query string `json:"query"`
				}
				if err := json.Unmarshal(v.Query, &m); err != nil {
					t.Fatalf("%s: variable %s: %v", name, v.Name, err)
				}
				s = m.Query
			}
			out = append(out, query{where: name + ": variable $" + v.Name, expr: variableExpr(t, s)})
		}
	}
	return out
}

// variableExpr turns a Grafana variable query into PromQL:
// label_values(selector, label) queries selector.
func variableExpr(t *testing.T, q string) string {
	t.Helper()
	q = strings.TrimSpace(q)
	if rest, ok := strings.CutPrefix(q, "label_values("); ok {
		i := strings.LastIndex(rest, ",")
		if i < 0 {
			t.Fatalf("variable query %q: want label_values(selector, label)", q)
		}
		return strings.TrimSpace(rest[:i])
	}
	return q
}

// grafanaVars are Grafana's variables with values PromQL can parse.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"$"+grafana.TenantVar, "nairobi",
)

// selector is one vector selector of a query.
type selector struct {
	name     string
	matchers []*labels.Matcher // without __name__
}

func parseQuery(t *testing.T, q query) []selector {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(q.expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
		return nil
	}
	var out []selector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if s.name == "" && m.Type == labels.MatchEqual {
					s.name = m.Value
				}
				continue
			}
			s.matchers = append(s.matchers, m)
		}
		if s.name == "" {
			t.Errorf("%s: %q selects no single metric name", q.where, q.expr)
			return nil
		}
		out = append(out, s)
		return nil
	})
	return out
}

// knownMetrics are the metric names the code exports as constants, plus
// those of client_golang's Go and process collectors and Prometheus's up.
func knownMetrics() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{
		proxy.MetricRequests, proxy.MetricRequestDuration, proxy.MetricUpstreamErrors, proxy.MetricRoutes,
		proxy.MetricTenantInstances, proxy.MetricTableUpdates, proxy.MetricTableLastUpdate, proxy.MetricInFlight,
		app.MetricRequests, app.MetricRequestDuration, app.MetricStudents, app.MetricLoginFailures,
		supervisor.MetricChildrenRunning, supervisor.MetricRestartsTotal, supervisor.MetricStartSeconds,
		// Scale to zero (issue 12).
		supervisor.MetricTenants, supervisor.MetricColdStartsTotal, supervisor.MetricWakeSeconds,
		supervisor.MetricIdleStopsTotal, supervisor.MetricLivenessRestartsTotal, supervisor.MetricStartsWaiting,
		proxy.MetricHeldRequests, proxy.MetricWakesTotal, proxy.MetricHostLookups,
		// Memory budget (issue 20).
		supervisor.MetricMemoryKillsTotal, supervisor.MetricEvictionsTotal, supervisor.MetricStartsOverCap,
		consul.MetricWatchErrors, consul.MetricWatchReconnects, consul.MetricLastUpdate, consul.MetricLastIndex,
		certs.MetricCertExpiry, certs.MetricACMEOrders, certs.MetricACMEErrors, certs.MetricHandshakesRefused,
		proxy.MetricTenantState,
		"up", "process_start_time_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines",
	} {
		m[n] = true
	}
	return m
}

// histogramBase strips the suffixes of a classic histogram's series.
func histogramBase(name string) (string, bool) {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b, true
		}
	}
	return name, false
}

// TestDashboardQueries: every dashboard query parses as PromQL and names
// only metrics whose names the code exports. TestLiveSystem then checks them
// against running processes.
func TestDashboardQueries(t *testing.T) {
	known := knownMetrics()
	queries := dashboardQueries(t)
	if len(queries) < 10 {
		t.Fatalf("only %d queries in the dashboards", len(queries))
	}
	used := map[string]bool{}
	for _, q := range queries {
		for _, s := range parseQuery(t, q) {
			name := s.name
			if b, ok := histogramBase(name); ok && known[b] {
				name = b
			}
			if !known[name] {
				t.Errorf("%s: metric %s is not one the code exports", q.where, s.name)
			}
			used[name] = true
			for _, m := range s.matchers {
				if m.Name == "job" && !slices.Contains([]string{grafana.JobApp, grafana.JobProxy}, m.Value) {
					t.Errorf("%s: job %q is not a job of prometheus.yml", q.where, m.Value)
				}
			}
		}
	}
	// The issue asks for these views.
	for _, want := range []string{
		proxy.MetricRequests, proxy.MetricRequestDuration, proxy.MetricTenantInstances, proxy.MetricRoutes,
		proxy.MetricTableLastUpdate, consul.MetricWatchErrors, app.MetricStudents, supervisor.MetricRestartsTotal,
		supervisor.MetricTenants, supervisor.MetricColdStartsTotal, supervisor.MetricWakeSeconds,
		supervisor.MetricLivenessRestartsTotal, proxy.MetricHeldRequests,
		supervisor.MetricMemoryKillsTotal, supervisor.MetricEvictionsTotal,
	} {
		if !used[want] {
			t.Errorf("no dashboard shows %s", want)
		}
	}
}

// exposed is what running processes serve on /metrics: metric family name →
// label names seen on its samples (histograms under their base name).
type exposed map[string]map[string]bool

func (e exposed) add(families map[string]familyLabels) {
	for name, ls := range families {
		if e[name] == nil {
			e[name] = map[string]bool{}
		}
		for l := range ls {
			e[name][l] = true
		}
	}
}

type familyLabels map[string]bool

// checkExposed fails for every dashboard metric or label matcher that the
// running processes do not expose. targetLabels are the labels Prometheus
// adds per target (job, instance and the relabelled ones).
func checkExposed(t *testing.T, e exposed, targetLabels map[string]bool) {
	t.Helper()
	var missing []string
	for _, q := range dashboardQueries(t) {
		for _, s := range parseQuery(t, q) {
			if s.name == "up" {
				continue // made by Prometheus per target
			}
			name := s.name
			ls, ok := e[name]
			if !ok {
				if b, isHist := histogramBase(name); isHist {
					ls, ok = e[b]
				}
			}
			if !ok {
				missing = append(missing, fmt.Sprintf("%s: %s", q.where, s.name))
				continue
			}
			for _, m := range s.matchers {
				if !ls[m.Name] && !targetLabels[m.Name] {
					t.Errorf("%s: %s has no label %q on /metrics (labels: %v)", q.where, s.name, m.Name, sortedKeys(ls))
				}
			}
		}
	}
	sort.Strings(missing)
	for _, m := range slices.Compact(missing) {
		t.Errorf("%s is not exposed by the running proxy or apps", m)
	}
}
