package engines

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// TestPrometheus starts the real server on a configuration that scrapes
// itself, and checks the helpers: /-/ready, targets, instant queries, and
// that a configuration or query Prometheus refuses is an error.
func TestPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	dir := t.TempDir()
	ports, err := systemtest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	rules := filepath.Join(dir, "rules.yml")
	write(t, rules, "groups:\n  - name: self\n    rules:\n      - record: self:up\n        expr: sum(up)\n")
	cfg := filepath.Join(dir, "prometheus.yml")
	write(t, cfg, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"+
		"scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['"+listen+"']\n")
	p := PrometheusForTest(t, PrometheusOptions{ConfigFile: cfg, Listen: listen})
	if p.Addr != listen {
		t.Fatalf("Addr %s, want %s", p.Addr, listen)
	}
	ctx := context.Background()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ts, err := p.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].Health == "up" && ts[0].Labels["job"] == "self" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets %+v, want job self up\n%s", ts, p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	r, err := p.Query(ctx, `up{job="self"}`, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "vector" || len(r.Vector) != 1 || r.Vector[0].Value != 1 || string(r.Vector[0].Metric["instance"]) != listen {
		t.Errorf("up: %+v, want one sample 1 of instance %s", r, listen)
	}
	if r, err := p.Query(ctx, "scalar(vector(2))", time.Time{}); err != nil || r.Type != "scalar" || len(r.Vector) != 1 || r.Vector[0].Value != 2 {
		t.Errorf("scalar(vector(2)): %+v, %v", r, err)
	}
	if _, err := p.Query(ctx, "sum(", time.Time{}); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("a malformed query: error %v, want bad_data", err)
	}
	groups, err := p.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Name != "self" || len(groups[0].Rules) != 1 || groups[0].Rules[0].Name != "self:up" {
		t.Errorf("rules %+v, want group self with self:up", groups)
	}

	// A rule file that does not load stops Prometheus from starting.
	bad := filepath.Join(dir, "bad.yml")
	write(t, bad, "rule_files: [broken.yml]\n")
	write(t, filepath.Join(dir, "broken.yml"), "groups:\n  - name: x\n    rules:\n      - record: x\n        expr: sum(\n")
	if p, err := StartPrometheus(ctx, PrometheusOptions{ConfigFile: bad, Dir: t.TempDir()}); err == nil {
		p.Stop()
		t.Fatal("Prometheus started with a rule that does not parse")
	} else if !strings.Contains(err.Error(), "broken.yml") {
		t.Errorf("error %v does not name the rule file", err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
