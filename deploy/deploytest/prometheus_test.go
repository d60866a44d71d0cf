package deploytest

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/config"
	promconsul "github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"

	"github.com/campus-saas/campus/deploy/grafana"
	"github.com/campus-saas/campus/registry/consul"
)

const (
	prometheusFile  = "deploy/prometheus/prometheus.yml"
	metricsPortMeta = "metrics_port"
)

func loadPrometheus(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.LoadFile(repoPath(prometheusFile), false, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("load %s: %v", prometheusFile, err)
	}
	return cfg
}

// scrapeJob returns a job and its one Consul service discovery.
func scrapeJob(t *testing.T, cfg *config.Config, name string) (*config.ScrapeConfig, *promconsul.SDConfig) {
	t.Helper()
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != name {
			continue
		}
		if len(sc.ServiceDiscoveryConfigs) != 1 {
			t.Fatalf("job %s: %d service discoveries, want one consul_sd_configs", name, len(sc.ServiceDiscoveryConfigs))
		}
		sd, ok := sc.ServiceDiscoveryConfigs[0].(*promconsul.SDConfig)
		if !ok {
			t.Fatalf("job %s discovers with %T, want Consul", name, sc.ServiceDiscoveryConfigs[0])
		}
		return sc, sd
	}
	t.Fatalf("%s has no job %s", prometheusFile, name)
	return nil, nil
}

// consulService is a Consul service definition, as in Consul's config files
// and the agent API.
type consulService struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta"`
	Check   struct {
		ID       string `json:"id,omitempty"`
		Name     string `json:"name,omitempty"`
		HTTP     string `json:"http"`
		Interval string `json:"interval"`
		Timeout  string `json:"timeout,omitempty"`
	} `json:"check"`
}

// targetLabels builds the labels Prometheus's Consul discovery gives one
// service instance (discovery/consul: watch), before relabelling.
func targetLabels(job string, svc consulService, nodeAddr string) labels.Labels {
	addr := svc.Address
	if addr == "" {
		addr = nodeAddr
	}
	lb := labels.NewBuilder(labels.EmptyLabels())
	lb.Set(model.AddressLabel, joinHostPort(addr, svc.Port))
	lb.Set(model.JobLabel, job)
	lb.Set("__meta_consul_address", nodeAddr)
	lb.Set("__meta_consul_service_address", svc.Address)
	lb.Set("__meta_consul_service_port", strconv.Itoa(svc.Port))
	lb.Set("__meta_consul_service_id", svc.ID)
	lb.Set("__meta_consul_service", svc.Name)
	lb.Set("__meta_consul_tags", ","+strings.Join(svc.Tags, ",")+",")
	for k, v := range svc.Meta {
		lb.Set("__meta_consul_service_metadata_"+k, v)
	}
	return lb.Labels()
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// relabelTarget applies a job's relabelling as Prometheus does and returns
// the final target labels (meta labels dropped), or false if dropped.
func relabelTarget(sc *config.ScrapeConfig, ls labels.Labels) (map[string]string, bool) {
	lb := labels.NewBuilder(ls)
	if !relabel.ProcessBuilder(lb, sc.RelabelConfigs...) {
		return nil, false
	}
	out := map[string]string{}
	lb.Labels().Range(func(l labels.Label) {
		if !strings.HasPrefix(l.Name, model.MetaLabelPrefix) {
			out[l.Name] = l.Value
		}
	})
	return out, true
}

// jobTargetLabels are the labels a job's relabelling adds to every target,
// besides job and instance.
func jobTargetLabels(cfg *config.Config) map[string]bool {
	out := map[string]bool{model.JobLabel: true, model.InstanceLabel: true}
	for _, sc := range cfg.ScrapeConfigs {
		for _, rc := range sc.RelabelConfigs {
			if rc.TargetLabel != "" && !strings.HasPrefix(rc.TargetLabel, "__") {
				out[rc.TargetLabel] = true
			}
		}
	}
	return out
}

func TestPrometheusConfig(t *testing.T) {
	cfg := loadPrometheus(t)
	p := loadCompose(t)

	appJob, appSD := scrapeJob(t, cfg, grafana.JobApp)
	proxyJob, proxySD := scrapeJob(t, cfg, grafana.JobProxy)
	// The apps register as campus-app-<tenant>, each with tag campus-app.
	if len(appSD.Services) != 0 || !slices.Equal(appSD.ServiceTags, []string{consul.ServiceTag}) {
		t.Errorf("job %s discovers services %v with tags %v; the apps register as %s<tenant> with tag %q",
			grafana.JobApp, appSD.Services, appSD.ServiceTags, consul.DefaultServicePrefix, consul.ServiceTag)
	}
	// Both read Consul with the read-only token of compose's secret.
	for _, sd := range []*promconsul.SDConfig{appSD, proxySD} {
		if a := sd.HTTPClientConfig.Authorization; a == nil || a.CredentialsFile != "/run/secrets/consul_token_prometheus" {
			t.Errorf("consul_sd of %s: authorization %+v, want credentials_file /run/secrets/consul_token_prometheus", sd.Server, a)
		}
	}
	// The proxies register themselves as campus-proxy (TestLiveSystem
	// watches them do it); in compose at the address Prometheus dials.
	if !slices.Equal(proxySD.Services, []string{grafana.JobProxy}) {
		t.Errorf("job %s discovers %v; the proxies register as %q", grafana.JobProxy, proxySD.Services, grafana.JobProxy)
	}
	proxyCmd := p.Services["proxy"].Command
	advertise, admin := flagValue(proxyCmd, "--admin-advertise"), flagValue(proxyCmd, "--admin-listen")
	if host, _, _ := strings.Cut(advertise, ":"); host != "proxy" || port(advertise) != port(admin) || port(admin) == 0 {
		t.Errorf("compose proxy: --admin-advertise %q, want the service name proxy and the port of --admin-listen %q", advertise, admin)
	}
	if !appJob.HonorLabels {
		t.Errorf("job %s: honor_labels must be true, or the apps' own tenant label becomes exported_tenant", grafana.JobApp)
	}

	// Prometheus, the apps and the proxy reach the same Consul.
	for _, sd := range []*promconsul.SDConfig{appSD, proxySD} {
		host, _, _ := strings.Cut(sd.Server, ":")
		if _, ok := p.Services[host]; !ok {
			t.Errorf("consul_sd server %q is not a compose service", sd.Server)
		}
		for _, name := range []string{"proxy", appPrefix + "nairobi"} {
			if v := p.Services[name].Environment["CONSUL_HTTP_ADDR"]; v == nil || *v != sd.Server {
				t.Errorf("%s uses CONSUL_HTTP_ADDR %v, Prometheus %q", name, v, sd.Server)
			}
		}
	}
	prom := p.Services["prometheus"]
	if !slices.ContainsFunc(prom.Configs, func(c types.ServiceConfigObjConfig) bool {
		return c.Target == "/etc/prometheus/prometheus.yml" && p.Configs[c.Source].File == repoPath(prometheusFile)
	}) {
		t.Errorf("the prometheus service does not mount %s at /etc/prometheus/prometheus.yml", prometheusFile)
	}

	t.Run("relabelling", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			job      *config.ScrapeConfig
			svc      consulService
			node     string
			wantAddr string
			want     map[string]string
		}{
			{"compose proxy (self-registered)", proxyJob, consulService{ID: "campus-proxy-proxy:8001", Name: "campus-proxy", Address: "proxy", Port: 8001,
				Tags: []string{"campus"}, Meta: map[string]string{metricsPortMeta: "8001"}}, "172.18.0.2", "proxy:8001", nil},
			{"nomad proxy", proxyJob, consulService{ID: "_nomad-task-1", Name: "campus-proxy", Address: "10.0.0.5", Port: 8000,
				Meta: map[string]string{metricsPortMeta: "8001"}}, "10.0.0.5", "10.0.0.5:8001", nil},
			{"compose app", appJob, consulService{ID: "nairobi-app-nairobi:8080", Name: consul.DefaultServicePrefix + "nairobi", Address: "app-nairobi", Port: 8080,
				Tags: []string{consul.ServiceTag}, Meta: map[string]string{consul.MetaTenant: "nairobi"}}, "172.18.0.2",
				"app-nairobi:8080", map[string]string{"tenant": "nairobi"}},
			{"nomad app", appJob, consulService{ID: "_nomad-task-2", Name: consul.DefaultServicePrefix + "accra", Address: "10.0.0.6", Port: 23456,
				Tags: []string{consul.ServiceTag}}, "10.0.0.6",
				"10.0.0.6:23456", map[string]string{"tenant": "accra"}},
			// The tenant label comes from the service name, never from meta.
			{"app claiming another tenant in meta", appJob, consulService{ID: "x", Name: consul.DefaultServicePrefix + "accra", Address: "10.0.0.7", Port: 1,
				Tags: []string{consul.ServiceTag}, Meta: map[string]string{consul.MetaTenant: "nairobi"}}, "10.0.0.7",
				"10.0.0.7:1", map[string]string{"tenant": "accra"}},
		} {
			got, keep := relabelTarget(tc.job, targetLabels(tc.job.JobName, tc.svc, tc.node))
			if !keep {
				t.Errorf("%s: target dropped", tc.name)
				continue
			}
			if got[model.AddressLabel] != tc.wantAddr {
				t.Errorf("%s: scraped at %q, want %q", tc.name, got[model.AddressLabel], tc.wantAddr)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: label %s=%q, want %q", tc.name, k, got[k], v)
				}
			}
		}
	})
}

// TestGrafanaProvisioning ties Grafana's provisioning to compose and the
// dashboards package.
func TestGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t)
	g := p.Services["grafana"]
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		mounts[v.Target] = v.Source
	}
	if mounts["/etc/grafana/provisioning"] != repoPath("deploy/grafana/provisioning") {
		t.Errorf("grafana mounts %v, want deploy/grafana/provisioning at /etc/grafana/provisioning", mounts)
	}
	if mounts["/etc/grafana/dashboards"] != repoPath(dashboardsDir) {
		t.Errorf("grafana mounts %v, want %s at /etc/grafana/dashboards", mounts, dashboardsDir)
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home == nil ||
		*home != "/etc/grafana/dashboards/"+grafana.FleetUID+".json" {
		t.Errorf("home dashboard %v, want the fleet dashboard", home)
	}

	var ds struct {
		Datasources []struct {
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != grafana.DatasourceUID || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("data sources %+v, want one prometheus with uid %q", ds.Datasources, grafana.DatasourceUID)
	}
	if _, ok := p.Services["prometheus"]; !ok || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("data source URL %q, want the compose service http://prometheus:9090", ds.Datasources[0].URL)
	}

	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/grafana/provisioning/dashboards/campus.yml", &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != "/etc/grafana/dashboards" {
		t.Errorf("dashboard providers %+v, want one file provider at /etc/grafana/dashboards", prov.Providers)
	}
}

func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	raw, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}
