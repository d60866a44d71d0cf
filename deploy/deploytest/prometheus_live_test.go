package deploytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	promconsul "github.com/prometheus/prometheus/discovery/consul"
	"go.yaml.in/yaml/v3"

	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/proxy"
)

// The parts of the TestLiveSystem that run a real Prometheus.

// promScrapeInterval replaces the 15 s of prometheus.yml (and its scrape
// timeout and evaluation interval) so that rates have two samples within
// seconds rather than half a minute; nothing else of the file changes.
const promScrapeInterval = "2s"

// Grafana's variables, as Grafana expands them for these dashboards with
// its defaults: $__rate_interval is max($__interval + scrape interval,
// 4 × scrape interval) with the data source's default 15 s scrape
// interval, $__range the dashboards' default time range (now-6h).
const (
	rateInterval = "1m"
	rangeValue   = "6h"
)

func expandGrafanaVars(expr, tenant string) string {
	return strings.NewReplacer(
		"$__rate_interval", rateInterval,
		"$__interval", rateInterval,
		"$__range", rangeValue,
		"$"+grafana.TenantVar, tenant,
	).Replace(expr)
}

// promSubstitution is one exact string replacement of prometheus.yml.
type promSubstitution struct{ what, old, new string }

// promConfigForTest rewrites deploy/prometheus/prometheus.yml for this
// machine by exact string replacement: the compose addresses of Consul and
// of Prometheus itself, the scrape and evaluation intervals, and the
// container paths of any rule files (mounted by compose) to their files in
// the repository. It fails when a string to replace is gone and when,
// parsed with Prometheus's config package, anything else differs.
func promConfigForTest(t *testing.T, p *types.Project, consulAddr, promAddr string, secrets map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(repoPath(prometheusFile))
	if err != nil {
		t.Fatal(err)
	}
	orig := string(raw)
	subs := []promSubstitution{
		{"the compose Consul agent", "server: consul:8500", "server: " + consulAddr},
		{"Prometheus's own compose address", "localhost:9090", promAddr},
		{"the scrape interval", "scrape_interval: 15s", "scrape_interval: " + promScrapeInterval},
		{"the scrape timeout", "scrape_timeout: 10s", "scrape_timeout: " + promScrapeInterval},
		{"the evaluation interval", "evaluation_interval: 15s", "evaluation_interval: " + promScrapeInterval},
	}
	// Rule files reach the container as compose configs or bind mounts.
	for _, m := range promMounts(p) {
		if m.target != "/etc/prometheus/prometheus.yml" && strings.Contains(orig, m.target) {
			subs = append(subs, promSubstitution{"the mounted rule file " + m.target, m.target, m.source})
		}
	}
	// Secrets (the Consul token) reach it under /run/secrets.
	for _, sec := range p.Services["prometheus"].Secrets {
		target := sec.Target
		if target == "" {
			target = sec.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		if strings.Contains(orig, target) {
			subs = append(subs, promSubstitution{"the secret " + target, target, secrets[sec.Source]})
		}
	}
	got := orig
	for _, s := range subs {
		if !strings.Contains(got, s.old) {
			t.Fatalf("%s no longer contains %q (%s): update the substitutions of this test", prometheusFile, s.old, s.what)
		}
		got = strings.ReplaceAll(got, s.old, s.new)
	}

	// Only those fields changed.
	want, err := config.Load(orig, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	have, err := config.Load(got, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("%s after substitution: %v\n%s", prometheusFile, err, got)
	}
	undoSubstitutions(t, have, want, consulAddr, promAddr)
	if have.String() != want.String() {
		t.Fatalf("substituting %s changed more than addresses, intervals and rule paths:\n--- original\n%s\n--- substituted, substitutions undone\n%s", prometheusFile, want, have)
	}

	checkRuleFilesLoaded(t, got)
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// undoSubstitutions sets the substituted fields of have back to those of
// want, checking that each holds what was substituted.
func undoSubstitutions(t *testing.T, have, want *config.Config, consulAddr, promAddr string) {
	t.Helper()
	interval, err := model.ParseDuration(promScrapeInterval)
	if err != nil {
		t.Fatal(err)
	}
	g := &have.GlobalConfig
	if g.ScrapeInterval != interval || g.ScrapeTimeout != interval || g.EvaluationInterval != interval {
		t.Errorf("substituted global intervals %v/%v/%v, want %v", g.ScrapeInterval, g.ScrapeTimeout, g.EvaluationInterval, interval)
	}
	g.ScrapeInterval, g.ScrapeTimeout, g.EvaluationInterval = want.GlobalConfig.ScrapeInterval, want.GlobalConfig.ScrapeTimeout, want.GlobalConfig.EvaluationInterval
	have.RuleFiles = want.RuleFiles
	if len(have.ScrapeConfigs) != len(want.ScrapeConfigs) {
		return // the comparison reports it
	}
	for i, sc := range have.ScrapeConfigs {
		ws := want.ScrapeConfigs[i]
		// Jobs inherit the global intervals when they set none.
		if sc.ScrapeInterval == interval {
			sc.ScrapeInterval = ws.ScrapeInterval
		}
		if sc.ScrapeTimeout == interval {
			sc.ScrapeTimeout = ws.ScrapeTimeout
		}
		if len(sc.ServiceDiscoveryConfigs) != len(ws.ServiceDiscoveryConfigs) {
			continue
		}
		for j, sd := range sc.ServiceDiscoveryConfigs {
			switch sd := sd.(type) {
			case *promconsul.SDConfig:
				if sd.Server != consulAddr {
					t.Errorf("job %s: consul server %q after substitution, want %s", sc.JobName, sd.Server, consulAddr)
				}
				if w, ok := ws.ServiceDiscoveryConfigs[j].(*promconsul.SDConfig); ok {
					sd.Server = w.Server
					if a, wa := sd.HTTPClientConfig.Authorization, w.HTTPClientConfig.Authorization; a != nil && wa != nil {
						if a.CredentialsFile == wa.CredentialsFile {
							t.Errorf("job %s: the Consul token file %q was not substituted", sc.JobName, a.CredentialsFile)
						}
						a.CredentialsFile = wa.CredentialsFile
					}
				}
			case discovery.StaticConfig:
				w, ok := ws.ServiceDiscoveryConfigs[j].(discovery.StaticConfig)
				if !ok || len(w) != len(sd) {
					continue
				}
				for k, tg := range sd {
					for l, target := range tg.Targets {
						if target[model.AddressLabel] == model.LabelValue(promAddr) && l < len(w[k].Targets) {
							target[model.AddressLabel] = w[k].Targets[l][model.AddressLabel]
						}
					}
				}
			}
		}
	}
}

type promMount struct{ target, source string }

// promMounts are the files compose mounts into the prometheus service.
func promMounts(p *types.Project) []promMount {
	s := p.Services["prometheus"]
	var out []promMount
	for _, c := range s.Configs {
		if f := p.Configs[c.Source].File; f != "" {
			out = append(out, promMount{c.Target, f})
		}
	}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			out = append(out, promMount{v.Target, v.Source})
		}
	}
	return out
}

// checkRuleFilesLoaded: every rule file in deploy/prometheus is one that
// the substituted configuration loads, and every rule_files pattern finds
// a file. Prometheus then refuses to start on a rule that does not load.
func checkRuleFilesLoaded(t *testing.T, cfgText string) {
	t.Helper()
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatal(err)
	}
	loaded := map[string]bool{}
	for _, pat := range cfg.RuleFiles {
		if !filepath.IsAbs(pat) {
			t.Errorf("rule_files %q is relative to /etc/prometheus in the container; mount the file and name its absolute path", pat)
			continue
		}
		files, err := filepath.Glob(pat)
		if err != nil || len(files) == 0 {
			t.Errorf("rule_files %q matches no file of the repository (%v)", pat, err)
		}
		for _, f := range files {
			loaded[f] = true
		}
	}
	entries, err := os.ReadDir(repoPath("deploy/prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f := repoPath("deploy/prometheus", e.Name())
		if e.IsDir() || f == repoPath(prometheusFile) || !(strings.HasSuffix(f, ".yml") || strings.HasSuffix(f, ".yaml")) {
			continue
		}
		if !loaded[f] {
			t.Errorf("%s is in deploy/prometheus but no rule_files of %s (as compose mounts it) loads it", f, prometheusFile)
		}
	}
}

// ruleGroupsIn counts the rule groups of the files a configuration loads.
func ruleGroupsIn(t *testing.T, cfgText string) int {
	t.Helper()
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pat := range cfg.RuleFiles {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			var rf struct {
				Groups []struct {
					Name string `yaml:"name"`
				} `yaml:"groups"`
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(b, &rf); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			n += len(rf.Groups)
		}
	}
	return n
}

// startPrometheus runs the real Prometheus on prometheus.yml as
// substituted by promConfigForTest, and checks it loaded every rule group.
func startPrometheus(t *testing.T, p *types.Project, consulAddr string, secrets map[string]string) *engines.Prometheus {
	t.Helper()
	listen := freeAddr(t)
	path := promConfigForTest(t, p, consulAddr, listen, secrets)
	prom := engines.PrometheusForTest(t, engines.PrometheusOptions{ConfigFile: path, Listen: listen})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- Prometheus log ----\n%s", systemtest.Tail(prom.Log(), 6000))
		}
	})
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := prom.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := ruleGroupsIn(t, string(text)); len(groups) != want {
		t.Fatalf("Prometheus loaded %d rule groups, the rule files have %d", len(groups), want)
	}
	return prom
}

// waitTargets waits until Prometheus's active targets are, per job,
// exactly the addresses want names, all up, app targets labelled with
// their tenant (and exposing only that tenant's series).
func waitTargets(t *testing.T, prom *engines.Prometheus, want map[string][]string, tenants []tenantLine) {
	t.Helper()
	var last []engines.Target
	err := eventually(2*time.Minute, func() error {
		ts, err := prom.Targets(context.Background())
		if err != nil {
			return err
		}
		last = ts
		got := map[string][]string{}
		for _, tg := range ts {
			if tg.Health != "up" {
				return fmt.Errorf("target %s of job %s is %s: %s", tg.ScrapeURL, tg.ScrapePool, tg.Health, tg.LastError)
			}
			got[tg.ScrapePool] = append(got[tg.ScrapePool], tg.Labels[model.InstanceLabel])
		}
		for job, addrs := range want {
			g := slices.Sorted(slices.Values(got[job]))
			if !slices.Equal(g, slices.Sorted(slices.Values(addrs))) {
				return fmt.Errorf("job %s scrapes %v, want %v", job, g, slices.Sorted(slices.Values(addrs)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Prometheus targets: %v\n%+v", err, last)
	}
	names := map[string]bool{}
	for _, tl := range tenants {
		names[tl.name] = true
	}
	for _, tg := range last {
		switch tg.ScrapePool {
		case grafana.JobApp:
			if !names[tg.Labels["tenant"]] {
				t.Errorf("app target %s has tenant label %q, not a tenant", tg.ScrapeURL, tg.Labels["tenant"])
			}
			checkTenantLabels(t, scrape(t, tg.ScrapeURL), tg.Labels["tenant"])
		case grafana.JobProxy:
			if _, ok := scrape(t, tg.ScrapeURL)[proxy.MetricRoutes]; !ok {
				t.Errorf("job %s scrapes %s, which has no %s: not a proxy's admin port", tg.ScrapePool, tg.ScrapeURL, proxy.MetricRoutes)
			}
		}
	}
}

// promQuery is one dashboard query with its variables expanded.
type promQuery struct {
	where, expr string
}

// expandedQueries are every query of every panel and variable of every
// dashboard, those of the per-tenant dashboard once per tenant.
func expandedQueries(t *testing.T, tenants []tenantLine) []promQuery {
	t.Helper()
	var out []promQuery
	for _, q := range dashboardQueries(t) {
		if !strings.Contains(q.expr, "$"+grafana.TenantVar) {
			out = append(out, promQuery{q.where, expandGrafanaVars(q.expr, "")})
			continue
		}
		for _, tl := range tenants {
			out = append(out, promQuery{q.where + " ($" + grafana.TenantVar + "=" + tl.name + ")", expandGrafanaVars(q.expr, tl.name)})
		}
	}
	return out
}

// checkDashboardsInPrometheus evaluates every dashboard query through
// Prometheus's HTTP API until each answers with at least one series, and
// fails for those that still error or answer nothing after a generous
// deadline. No request has had a 5xx: the error panels must answer 0.
func checkDashboardsInPrometheus(t *testing.T, prom *engines.Prometheus, tenants []tenantLine) {
	t.Helper()
	ctx := context.Background()
	queries := expandedQueries(t, tenants)
	if len(queries) < 20 {
		t.Fatalf("only %d queries", len(queries))
	}
	failing := map[promQuery]string{}
	err := eventually(2*time.Minute, func() error {
		clear(failing)
		for _, q := range queries {
			r, err := prom.Query(ctx, q.expr, time.Time{})
			switch {
			case err != nil:
				failing[q] = err.Error()
			case len(r.Warnings) > 0:
				failing[q] = fmt.Sprintf("warnings %v", r.Warnings)
			case len(r.Vector) == 0:
				failing[q] = "no series"
			}
		}
		if len(failing) > 0 {
			return fmt.Errorf("%d of %d queries fail", len(failing), len(queries))
		}
		return nil
	})
	if err != nil {
		for _, q := range queries {
			if why, ok := failing[q]; ok {
				t.Errorf("%s: %s: %s", q.where, why, q.expr)
			}
		}
		return
	}
	t.Logf("%d dashboard queries answered with series", len(queries))

	// The 5xx panels answered with series, yet no 5xx was ever counted.
	r, err := prom.Query(ctx, fmt.Sprintf(`%s{%s=~"5.."}`, proxy.MetricRequests, proxy.LabelCode), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Vector) != 0 {
		t.Errorf("the proxies counted 5xx answers, so this run does not show the 5xx panels answer 0 without one: %v", r.Vector)
	}
	for _, q := range queries {
		if !strings.Contains(q.expr, `"5.."`) {
			continue
		}
		r, err := prom.Query(ctx, q.expr, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Vector {
			if v := float64(s.Value); v != 0 && v == v { // NaN (0/0) is "no traffic", not an error
				t.Errorf("%s: %v without a single 5xx", q.where, s)
			}
		}
	}

	// The restart panels answer 0 before any restart.
	for _, tl := range tenants {
		q := fmt.Sprintf(`%s{tenant=%q}`, supervisor.MetricRestartsTotal, tl.name)
		r, err := prom.Query(ctx, q, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Vector) != 1 || r.Vector[0].Value != 0 {
			t.Errorf("%s before any restart: %v, want one series at 0", q, r.Vector)
		}
	}
}

// checkRestartCounted waits for the restarted child to be scraped again
// (on another port) and for the dashboards' restart queries to count it.
func checkRestartCounted(t *testing.T, prom *engines.Prometheus, crashed devChild) {
	t.Helper()
	ctx := context.Background()
	var restartQueries []promQuery
	for _, q := range dashboardQueries(t) {
		if strings.Contains(q.expr, supervisor.MetricRestartsTotal) {
			restartQueries = append(restartQueries, promQuery{q.where, expandGrafanaVars(q.expr, crashed.tenant)})
		}
	}
	if len(restartQueries) == 0 {
		t.Fatalf("no dashboard query counts %s", supervisor.MetricRestartsTotal)
	}
	err := eventually(2*time.Minute, func() error {
		ts, err := prom.Targets(ctx)
		if err != nil {
			return err
		}
		back := false
		for _, tg := range ts {
			if tg.ScrapePool == grafana.JobApp && tg.Labels["tenant"] == crashed.tenant && tg.Health == "up" &&
				tg.Labels[model.InstanceLabel] != crashed.listen && strings.HasPrefix(tg.DiscoveredLabels["__meta_consul_service_id"], "dev-") {
				back = true
			}
		}
		if !back {
			return fmt.Errorf("no restarted dev child of %s (was %s) is scraped yet", crashed.tenant, crashed.listen)
		}
		for _, q := range restartQueries {
			r, err := prom.Query(ctx, q.expr, time.Time{})
			if err != nil {
				return err
			}
			if len(r.Vector) != 1 || !(r.Vector[0].Value > 0) {
				return fmt.Errorf("%s: %v after a restart, want more than 0", q.where, r.Vector)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// waitProxiesRegistered waits until the campus-proxy services in Consul
// are exactly the proxies at admin addresses want, each with a passing
// check and metrics_port naming its admin port.
func waitProxiesRegistered(t *testing.T, cc *consulapi.Client, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	err := eventually(60*time.Second, func() error {
		entries, _, err := cc.Health().Service(grafana.JobProxy, "", false, nil)
		if err != nil {
			return err
		}
		var got []string
		for _, e := range entries {
			addr := joinHostPort(e.Service.Address, e.Service.Port)
			if _, port := splitAddrErr(addr); e.Service.Meta[metricsPortMeta] != port {
				return fmt.Errorf("%s: meta %s=%q, want its port %s", e.Service.ID, metricsPortMeta, e.Service.Meta[metricsPortMeta], port)
			}
			if status := e.Checks.AggregatedStatus(); status != consulapi.HealthPassing {
				return fmt.Errorf("%s: check %s", e.Service.ID, status)
			}
			got = append(got, addr)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s services at %v, want %v", grafana.JobProxy, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func splitAddrErr(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}
