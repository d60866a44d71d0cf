// Package grafana builds Campus's Grafana dashboards in Go, with the
// Grafana Foundation SDK, so that every query names its metrics through the
// constants the code exports (proxy.MetricRequests, app.MetricStudents, …)
// rather than through strings that could drift.
//
// The JSON files Grafana loads are generated from here into
// deploy/grafana/dashboards/ and committed; the package test fails when they
// are stale. Regenerate them with
//
//	go test ./deploy/grafana -update
//
// deploy/deploytest then checks every metric and label the JSON queries
// against what a running proxy and app really expose.
package grafana

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
)

// Provisioning facts shared with deploy/grafana/provisioning and the
// Prometheus configuration.
const (
	// DatasourceUID is the uid of the provisioned Prometheus data source.
	DatasourceUID = "prometheus"
	// FleetUID and TenantUID are the dashboards' uids (their URLs are
	// /d/<uid>).
	FleetUID  = "campus-fleet"
	TenantUID = "campus-tenant"
	// TenantVar is the per-tenant dashboard's variable.
	TenantVar = "tenant"
	// JobApp and JobProxy are the Prometheus job names of
	// deploy/prometheus/prometheus.yml; JobApp is also the Consul tag every
	// app service carries (consul.ServiceTag; the services themselves are
	// named campus-app-<tenant>).
	JobApp   = consul.ServiceTag
	JobProxy = "campus-proxy"
)

// Metric names the code does not export as constants.
const (
	// Prometheus's own per-target series.
	metricUp = "up"
	// client_golang's process and Go collectors, registered by every campus
	// process.
	metricProcessCPU      = "process_cpu_seconds_total"
	metricProcessResident = "process_resident_memory_bytes"
	metricGoGoroutines    = "go_goroutines"
)

// Label names and suffixes used in queries.
const (
	labelTenant = proxy.LabelTenant
	labelCode   = proxy.LabelCode
	labelReason = proxy.LabelReason
	labelRoute  = "route"  // app.MetricRequests, app.MetricRequestDuration
	labelSource = "source" // consul.MetricWatchErrors
	labelState  = "state"  // supervisor.MetricTenants
	bucket      = "_bucket"
)

// Dashboards returns every dashboard by its file name under
// deploy/grafana/dashboards/.
func Dashboards() (map[string]dashboard.Dashboard, error) {
	out := map[string]dashboard.Dashboard{}
	for name, b := range map[string]*dashboard.DashboardBuilder{
		FleetUID + ".json":  fleet(),
		TenantUID + ".json": tenant(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build dashboard %s: %w", name, err)
		}
		out[name] = d
	}
	return out, nil
}

// Files renders Dashboards as the indented JSON Grafana provisions.
func Files() (map[string][]byte, error) {
	ds, err := Dashboards()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(ds))
	for name, d := range ds {
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode dashboard %s: %w", name, err)
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// ---- the two dashboards ----

func fleet() *dashboard.DashboardBuilder {
	var p panels
	all := fmt.Sprintf("sum by (%s) (rate(%s[$__rate_interval]))", labelTenant, proxy.MetricRequests)
	errs := fmt.Sprintf(`sum by (%s) (rate(%s{%s=~"5.."}[$__rate_interval]))`, labelTenant, proxy.MetricRequests, labelCode)
	return base(FleetUID, "Campus fleet", "Every tenant through the proxies: traffic, errors, latency, instances, routing and the registry.").
		Link(dashboard.NewDashboardLinkBuilder("Campus tenant").Type(dashboard.DashboardLinkTypeLink).
			Url("/d/" + TenantUID).KeepTime(true).Icon("dashboard")).
		WithRow(row(&p, "Traffic")).
		WithPanel(p.series("Requests per second by tenant", "reqps", 12,
			"Requests answered by the proxies. _unknown: hosts that belong to no tenant.",
			q(all, "{{tenant}}"))).
		WithPanel(p.series("Error ratio by tenant (5xx)", "percentunit", 12,
			"Share of each tenant's requests answered with a 5xx status by the proxy.",
			q(orZero(errs, all)+" / "+all, "{{tenant}}"))).
		WithPanel(p.series("Latency through the proxy", "s", 12,
			"Quantiles over every tenant's requests, in seconds.",
			quantiles(proxy.MetricRequestDuration, "")...)).
		WithPanel(p.series("p95 latency by tenant", "s", 12, "",
			q(fmt.Sprintf("histogram_quantile(0.95, sum by (%s, le) (rate(%s%s[$__rate_interval])))",
				labelTenant, proxy.MetricRequestDuration, bucket), "{{tenant}}"))).
		WithPanel(p.series("Upstream errors by tenant and reason", "ops", 12,
			"Failed attempts to reach an app: dial, timeout, other, no_instance (no healthy instance within the hold timeout).",
			q(fmt.Sprintf("sum by (%s, %s) (rate(%s[$__rate_interval]))", labelTenant, labelReason, proxy.MetricUpstreamErrors),
				"{{tenant}} {{reason}}"))).
		WithPanel(p.series("Requests in flight", "short", 12, "Requests being handled by each proxy, held ones included.",
			q(proxy.MetricInFlight, "{{instance}}"))).
		WithRow(row(&p, "Instances and routing")).
		WithPanel(p.series("Healthy instances per tenant (proxy view)", "short", 12,
			"Healthy app instances of each tenant in the proxies' routing tables.",
			q(fmt.Sprintf("max by (%s) (%s)", labelTenant, proxy.MetricTenantInstances), "{{tenant}}"))).
		WithPanel(p.series("App instances up per tenant (Prometheus view)", "short", 12,
			"App instances that Prometheus found in Consul and could scrape.",
			q(fmt.Sprintf(`sum by (%s) (%s{job="%s"})`, labelTenant, metricUp, JobApp), "{{tenant}}"))).
		WithPanel(p.stat("Proxies up", "short", 6,
			fmt.Sprintf(`sum(%s{job="%s"})`, metricUp, JobProxy))).
		WithPanel(p.stat("Routing table size (hosts)", "short", 6, "max("+proxy.MetricRoutes+")")).
		WithPanel(p.series("Routing table age", "s", 12,
			"Seconds since each proxy last published a routing table. It only changes when tenants or instances change, so a large value is normal on a quiet fleet.",
			q("time() - "+proxy.MetricTableLastUpdate, "{{instance}}"))).
		WithPanel(p.series("Routing table updates", "ops", 12, "",
			q(fmt.Sprintf("rate(%s[$__rate_interval])", proxy.MetricTableUpdates), "{{job}} {{instance}}"))).
		// HTTPS (issue 14): certificates the proxies hold, ACME orders.
		WithRow(row(&p, "HTTPS certificates")).
		WithPanel(p.series("Days until certificate expiry by tenant", "d", 12,
			"Earliest expiry of the certificates the proxies hold for each tenant's hosts. Renewal starts with a third of the lifetime left; the CampusCertificateExpiresSoon alert fires under 14 days.",
			q(fmt.Sprintf("(min by (%s) (%s) - time()) / 86400", labelTenant, certs.MetricCertExpiry), "{{tenant}}"))).
		WithPanel(p.series("ACME orders and errors", "ops", 12,
			"Orders placed; orders that failed or were not placed (capped: orders-per-hour cap; backoff: the host failed recently; refused: no longer a school's host); handshakes refused for unknown server names.",
			q(fmt.Sprintf("sum(rate(%s[$__rate_interval]))", certs.MetricACMEOrders), "orders"),
			q(fmt.Sprintf("sum by (%s) (rate(%s[$__rate_interval]))", labelReason, certs.MetricACMEErrors), "error {{reason}}"),
			q(fmt.Sprintf("sum(rate(%s[$__rate_interval]))", certs.MetricHandshakesRefused), "handshakes refused"))).
		WithRow(row(&p, "Registry (Consul)")).
		WithPanel(p.series("Registry watch errors", "ops", 12,
			"Failed blocking queries on Consul, by source (KV tenants, health checks, nodes, node services).",
			q(fmt.Sprintf("sum by (%s) (rate(%s[$__rate_interval]))", labelSource, consul.MetricWatchErrors), "{{source}}"))).
		WithPanel(p.series("Registry snapshot age", "s", 12,
			"Seconds since each process last received a registry snapshot from Consul.",
			q("time() - "+consul.MetricLastUpdate, "{{job}} {{instance}}"))).
		WithPanel(p.series("Host lookups on a miss", "ops", 12,
			"A request for a host the proxy's table does not route yet (or whose tenant has no healthy instance) asks Consul for that one host. routed: a new tenant or instance found before the watch delivered it; unknown/no_instance: nothing to route; limited: refused by --lookup-rate (a flood of unknown hosts); cached: a host found unroutable within the last second; error: Consul did not answer.",
			q(fmt.Sprintf("sum by (%s) (rate(%s[$__rate_interval]))", proxy.LabelResult, proxy.MetricHostLookups), "{{result}}"))).
		// Scale to zero and liveness (issue 12).
		WithRow(row(&p, "Scale to zero")).
		WithPanel(p.series("Tenants by state (supervisors)", "short", 12,
			"Tenant slots of the supervisors: running = ready + unhealthy; idle tenants have no process (scaled to zero) and start on their next request.",
			q(fmt.Sprintf("sum by (%s) (%s)", labelState, supervisor.MetricTenants), "{{state}}"))).
		WithPanel(p.series("Cold starts and idle stops", "ops", 12,
			"Starts that answered a request for an idle tenant, and apps stopped for being idle.",
			q(fmt.Sprintf("sum(rate(%s[$__rate_interval]))", supervisor.MetricColdStartsTotal), "cold starts"),
			q(fmt.Sprintf("sum(rate(%s[$__rate_interval]))", supervisor.MetricIdleStopsTotal), "idle stops"))).
		WithPanel(p.series("Time from wake to ready", "s", 12,
			"From a request's wake of an idle tenant to its app being ready and registered (the proxy then forwards the held requests).",
			quantiles(supervisor.MetricWakeSeconds, "")...)).
		WithPanel(p.series("Held requests and waiting starts", "short", 12,
			"Requests the proxies hold for a tenant with no instance, and starts waiting for a slot (the per-machine start cap).",
			q(fmt.Sprintf("sum(%s)", proxy.MetricHeldRequests), "held requests"),
			q(fmt.Sprintf("sum(%s)", supervisor.MetricStartsWaiting), "starts waiting"))).
		WithPanel(p.series("Liveness restarts", "short", 12,
			"Hung apps (health checks unanswered) killed and replaced by the supervisors.",
			q(fmt.Sprintf("sum(increase(%s[$__rate_interval]))", supervisor.MetricLivenessRestartsTotal), "liveness restarts"))).
		WithPanel(p.series("Wakes sent by the proxies", "ops", 12,
			"Calls of the proxies' waker (the local supervisor, or a wake request through the registry), at most about one per second per tenant.",
			q(fmt.Sprintf("sum(rate(%s[$__rate_interval]))", proxy.MetricWakesTotal), "wakes"))).
		// Memory budget (issue 20).
		WithRow(row(&p, "Memory budget")).
		WithPanel(p.series("Apps killed by their memory limit", "short", 12,
			"App processes the kernel killed for exceeding their memory limit (campus dev --memory, campus tenant set --memory), by tenant; each is restarted.",
			q(fmt.Sprintf("sum by (%s) (increase(%s[$__rate_interval]))", labelTenant, supervisor.MetricMemoryKillsTotal), "{{tenant}}"))).
		WithPanel(p.series("Running cap: evictions and starts over it", "short", 12,
			"Running apps stopped (least recently used first) to make room for a woken school under --max-running, and woken starts waiting for that room (their requests get 503 with Retry-After after the hold timeout).",
			q(fmt.Sprintf("sum(increase(%s[$__rate_interval]))", supervisor.MetricEvictionsTotal), "evictions"),
			q(fmt.Sprintf("sum(%s)", supervisor.MetricStartsOverCap), "starts over the cap")))
}

func tenant() *dashboard.DashboardBuilder {
	var p panels
	sel := fmt.Sprintf(`%s="$%s"`, labelTenant, TenantVar)
	all := fmt.Sprintf("sum(rate(%s{%s}[$__rate_interval]))", proxy.MetricRequests, sel)
	errs := fmt.Sprintf(`sum(rate(%s{%s, %s=~"5.."}[$__rate_interval]))`, proxy.MetricRequests, sel, labelCode)
	appSel := fmt.Sprintf(`job="%s", %s`, JobApp, sel)
	vq := fmt.Sprintf("label_values(%s, %s)", proxy.MetricTenantInstances, labelTenant)
	return base(TenantUID, "Campus tenant", "One tenant: its requests, latency, errors, students, instances and process restarts.").
		Link(dashboard.NewDashboardLinkBuilder("Campus fleet").Type(dashboard.DashboardLinkTypeLink).
			Url("/d/" + FleetUID).KeepTime(true).Icon("dashboard")).
		WithVariable(dashboard.NewQueryVariableBuilder(TenantVar).Label("Tenant").
			Query(dashboard.StringOrMap{String: &vq}).Definition(vq).
			Datasource(datasource()).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc)).
		WithRow(row(&p, "Overview")).
		WithPanel(p.stat("Students", "short", 6, fmt.Sprintf("max(%s{%s})", app.MetricStudents, sel))).
		WithPanel(p.stat("Healthy instances", "short", 6, fmt.Sprintf("max(%s{%s})", proxy.MetricTenantInstances, sel))).
		WithPanel(p.stat("Error ratio (5xx)", "percentunit", 6, orZero(errs, all)+" / "+all)).
		WithPanel(p.stat("Restarts in range", "short", 6,
			fmt.Sprintf("sum(increase(%s{%s}[$__range]))", supervisor.MetricRestartsTotal, sel))).
		WithRow(row(&p, "Requests")).
		WithPanel(p.series("Requests per second by status (proxy)", "reqps", 12, "",
			q(fmt.Sprintf("sum by (%s) (rate(%s{%s}[$__rate_interval]))", labelCode, proxy.MetricRequests, sel), "{{code}}"))).
		WithPanel(p.series("Requests per second by route (app)", "reqps", 12,
			"Requests served by the tenant's app instances, by route pattern.",
			q(fmt.Sprintf("sum by (%s) (rate(%s{%s}[$__rate_interval]))", labelRoute, app.MetricRequests, sel), "{{route}}"))).
		WithPanel(p.series("Latency through the proxy", "s", 12, "", quantiles(proxy.MetricRequestDuration, sel)...)).
		WithPanel(p.series("p95 latency by route (app)", "s", 12, "",
			q(fmt.Sprintf("histogram_quantile(0.95, sum by (%s, le) (rate(%s%s{%s}[$__rate_interval])))",
				labelRoute, app.MetricRequestDuration, bucket, sel), "{{route}}"))).
		WithPanel(p.series("Errors", "ops", 12,
			"5xx answers, failed attempts to reach the app by reason, and failed admin logins.",
			q(orZero(errs, all), "5xx"),
			q(fmt.Sprintf("sum by (%s) (rate(%s{%s}[$__rate_interval]))", labelReason, proxy.MetricUpstreamErrors, sel), "upstream {{reason}}"),
			q(fmt.Sprintf("sum(rate(%s{%s}[$__rate_interval]))", app.MetricLoginFailures, sel), "login failures"))).
		WithPanel(p.series("Students", "short", 12, "", q(fmt.Sprintf("max(%s{%s})", app.MetricStudents, sel), "students"))).
		WithRow(row(&p, "Processes")).
		WithPanel(p.series("Instances", "short", 8, "Healthy in the routing table, and scraped by Prometheus.",
			q(fmt.Sprintf("max(%s{%s})", proxy.MetricTenantInstances, sel), "healthy (proxy)"),
			q(fmt.Sprintf("sum(%s{%s})", metricUp, appSel), "up (Prometheus)"))).
		WithPanel(p.series("Process restarts", "short", 8,
			"Restarts of the tenant's app processes counted by the campus dev supervisor, whichever port a restarted process comes back on. Docker and Nomad count their own restarts: without a supervisor this panel has no data.",
			q(fmt.Sprintf("sum(increase(%s{%s}[$__rate_interval]))", supervisor.MetricRestartsTotal, sel), "supervisor restarts"))).
		WithPanel(p.series("Memory (resident)", "bytes", 8, "",
			q(fmt.Sprintf("%s{%s}", metricProcessResident, appSel), "{{instance}}"))).
		WithPanel(p.series("CPU", "percentunit", 12, "",
			q(fmt.Sprintf("rate(%s{%s}[$__rate_interval])", metricProcessCPU, appSel), "{{instance}}"))).
		WithPanel(p.series("Goroutines", "short", 12, "",
			q(fmt.Sprintf("%s{%s}", metricGoGoroutines, appSel), "{{instance}}")))
}

// ---- building blocks ----

// orZero is errs, or 0 for every series of all where errs has none: a rate
// of 5xx answers has no series until a first 5xx, and a panel should show
// 0 rather than "No data". all must aggregate by the same labels as errs.
func orZero(errs, all string) string {
	return fmt.Sprintf("(%s or (%s * 0))", errs, all)
}

func base(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"campus"}).
		Readonly().
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
}

func datasource() common.DataSourceRef {
	t, uid := "prometheus", DatasourceUID
	return common.DataSourceRef{Type: &t, Uid: &uid}
}

// q is one PromQL query with its legend.
func q(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource()).Expr(expr).LegendFormat(legend)
}

// quantiles are p50, p95 and p99 of a histogram, optionally filtered.
func quantiles(histogram, selector string) []*prometheus.DataqueryBuilder {
	sel := ""
	if selector != "" {
		sel = "{" + selector + "}"
	}
	var out []*prometheus.DataqueryBuilder
	for _, v := range []struct{ q, legend string }{{"0.5", "p50"}, {"0.95", "p95"}, {"0.99", "p99"}} {
		out = append(out, q(fmt.Sprintf("histogram_quantile(%s, sum by (le) (rate(%s%s%s[$__rate_interval])))",
			v.q, histogram, bucket, sel), v.legend))
	}
	return out
}

// panels hands out panel ids in order.
type panels struct{ next uint32 }

func (p *panels) id() uint32 { p.next++; return p.next }

func row(p *panels, title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(p.id())
}

func (p *panels) series(title, unit string, width uint32, description string, queries ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	b := timeseries.NewPanelBuilder().
		Id(p.id()).
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Min(0).
		Height(8).
		Span(width).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for i, qb := range queries {
		b.WithTarget(qb.RefId(string(rune('A' + i))))
	}
	return b
}

func (p *panels) stat(title, unit string, width uint32, expr string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Id(p.id()).
		Title(title).
		Datasource(datasource()).
		Unit(unit).
		Height(4).
		Span(width).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(q(expr, "").RefId("A").Instant())
}
