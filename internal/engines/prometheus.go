package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/campus-saas/campus/internal/systemtest"
)

// PrometheusOptions configures a Prometheus server.
type PrometheusOptions struct {
	// ConfigFile is the prometheus.yml to run with (required). Relative
	// rule_files are resolved against its folder, as Prometheus does.
	ConfigFile string
	// Listen is the address of the web UI and HTTP API, host:port; default
	// a free loopback port. A configuration that scrapes Prometheus itself
	// needs to know it beforehand: pick one and pass it here.
	Listen string
	// Dir holds the TSDB and the log; default a new temporary folder.
	Dir string
	// Args are more command-line flags.
	Args []string
}

// Prometheus is a running Prometheus server on loopback.
type Prometheus struct {
	// Addr is the HTTP address, host:port.
	Addr string

	opts PrometheusOptions
	mu   sync.Mutex
	proc *systemtest.Process
	log  *systemtest.Process // of the last start, kept after Stop
}

// StartPrometheus starts Prometheus with opts.ConfigFile, its TSDB in a
// folder of its own, and waits until /-/ready answers 200. A configuration
// (or rule file) that does not load makes Prometheus exit, and this return
// its log.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.ConfigFile == "" {
		return nil, errors.New("prometheus: no configuration file")
	}
	if _, err := os.Stat(opts.ConfigFile); err != nil {
		return nil, fmt.Errorf("prometheus: configuration: %w", err)
	}
	bin, err := Binary("prometheus")
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "campus-prometheus-"); err != nil {
			return nil, fmt.Errorf("prometheus: data folder: %w", err)
		}
	}
	p := &Prometheus{opts: opts}
	attempts := 3
	if opts.Listen != "" {
		attempts = 1 // the caller's port: nothing else to try
	}
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		p.Addr = opts.Listen
		if p.Addr == "" {
			ports, err := systemtest.FreePorts(1)
			if err != nil {
				return nil, err
			}
			p.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		}
		if lastErr = p.start(ctx, bin); lastErr == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (p *Prometheus) start(ctx context.Context, bin string) error {
	args := append([]string{
		"--config.file=" + p.opts.ConfigFile,
		"--storage.tsdb.path=" + p.opts.Dir + "/data",
		"--web.listen-address=" + p.Addr,
		"--log.level=info",
	}, p.opts.Args...)
	proc, err := startProcess(bin, args, p.opts.Dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	err = proc.WaitUntil(ctx, "prometheus on "+p.Addr, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		proc.Stop()
		return err
	}
	p.mu.Lock()
	p.proc, p.log = proc, proc
	p.mu.Unlock()
	return nil
}

// PrometheusForTest starts Prometheus for one test (its folder under
// tb.TempDir unless opts.Dir is set) and stops it at the test's end. A
// missing binary or a configuration that does not load fails the test.
func PrometheusForTest(tb TB, opts PrometheusOptions) *Prometheus {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	p, err := StartPrometheus(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start a real Prometheus: %v", err)
	}
	tb.Cleanup(p.Stop)
	return p
}

// URL is the server's base URL.
func (p *Prometheus) URL() string { return "http://" + p.Addr }

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// get calls GET /api/v1/<path>?<query> and returns its envelope, or an
// error for a transport failure or an answer with status "error".
func (p *Prometheus) get(ctx context.Context, path string, query url.Values) (*apiResponse, error) {
	u := p.URL() + "/api/v1/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %s", resp.Status, systemtest.Tail(string(body), 500))
	}
	if r.Status != "success" {
		return &r, fmt.Errorf("%s: %s: %s", resp.Status, r.ErrorType, r.Error)
	}
	return &r, nil
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

// QueryResult is the answer to an instant query.
type QueryResult struct {
	// Type is "vector", "scalar", "matrix" or "string".
	Type string
	// Vector holds the samples of a vector, or the one unlabelled sample
	// of a scalar.
	Vector model.Vector
	// Warnings and Infos are PromQL's annotations (e.g. "metric might not
	// be a counter").
	Warnings, Infos []string
}

// Query evaluates expr as an instant query at time at (zero: now) through
// /api/v1/query.
func (p *Prometheus) Query(ctx context.Context, expr string, at time.Time) (QueryResult, error) {
	if at.IsZero() {
		at = time.Now()
	}
	var out QueryResult
	r, err := p.get(ctx, "query", url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}})
	if err != nil {
		return out, fmt.Errorf("prometheus query %q: %w", expr, err)
	}
	out.Warnings, out.Infos = r.Warnings, r.Infos
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return out, fmt.Errorf("prometheus query %q: decode: %w", expr, err)
	}
	out.Type = data.ResultType
	switch data.ResultType {
	case "vector":
		err = json.Unmarshal(data.Result, &out.Vector)
	case "scalar":
		var s model.Scalar
		if err = json.Unmarshal(data.Result, &s); err == nil {
			out.Vector = model.Vector{{Metric: model.Metric{}, Value: s.Value, Timestamp: s.Timestamp}}
		}
	default:
		err = fmt.Errorf("a %s result, want a vector or a scalar", data.ResultType)
	}
	if err != nil {
		return out, fmt.Errorf("prometheus query %q: %w", expr, err)
	}
	return out, nil
}

// Target is one scrape target of /api/v1/targets.
type Target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	LastError        string            `json:"lastError"`
	Health           string            `json:"health"` // up, down, unknown
}

// Targets lists the active scrape targets (/api/v1/targets?state=active).
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	r, err := p.get(ctx, "targets", url.Values{"state": {"active"}})
	if err != nil {
		return nil, fmt.Errorf("prometheus targets: %w", err)
	}
	var data struct {
		Active []Target `json:"activeTargets"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return nil, fmt.Errorf("prometheus targets: decode: %w", err)
	}
	return data.Active, nil
}

// RuleGroup is one loaded rule group of /api/v1/rules.
type RuleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Type      string `json:"type"` // alerting, recording
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

// Rules lists the loaded rule groups (/api/v1/rules).
func (p *Prometheus) Rules(ctx context.Context) ([]RuleGroup, error) {
	r, err := p.get(ctx, "rules", nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus rules: %w", err)
	}
	var data struct {
		Groups []RuleGroup `json:"groups"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return nil, fmt.Errorf("prometheus rules: decode: %w", err)
	}
	return data.Groups, nil
}

// Log returns what the server has written so far (also after Stop).
func (p *Prometheus) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log == nil {
		return ""
	}
	return p.log.Output()
}

// Stop stops the server.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	proc := p.proc
	p.proc = nil
	p.mu.Unlock()
	if proc != nil {
		proc.Stop()
	}
}
