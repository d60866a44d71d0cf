package proxy

import "github.com/prometheus/client_golang/prometheus"

// MetricTenantState is 1 for each routed tenant with its state label
// (active, suspended, …), computed from the current table at scrape time,
// so that alerts can tell a tenant that should have an instance (active)
// from one that should not (suspended, idle).
const (
	MetricTenantState = "campus_proxy_tenant_state"
	LabelState        = "state"
)

// StateCollector reports MetricTenantState. Register it once beside the
// proxy's other metrics (cmd/campus does).
func (p *Proxy) StateCollector() prometheus.Collector {
	return &stateCollector{p: p, desc: prometheus.NewDesc(MetricTenantState,
		"1 per routed tenant, labelled with its state in the current routing table.",
		[]string{LabelTenant, LabelState}, nil)}
}

type stateCollector struct {
	p    *Proxy
	desc *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, rt := range c.p.table.Load().routes {
		if seen[rt.tenant.name] {
			continue
		}
		seen[rt.tenant.name] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, rt.tenant.name, string(rt.state))
	}
}
