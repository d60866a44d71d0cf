package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

func TestWantsJSON(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{"application/json, text/plain, */*", true}, // axios
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false}, // browsers
		{"*/*", false},
		{"text/html", false},
		{"text/html;q=0.5, application/json", true},
		{"application/json;q=0.5, text/html", false},
		{"application/json, text/html", false}, // a tie goes to HTML
		{"application/*", true},
		{"application/json;q=0", false},
		{"application/json;q=garbage", true},
	}
	for _, tt := range tests {
		if got := wantsJSON(tt.accept); got != tt.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestErrorPages(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: -1})
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{
		tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost"),
		suspended(tenant(t, "accra", "Accra Academy", "accra.school.localhost")),
	}})
	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantRetry  string
		wantError  string
	}{
		{"unknown school", request{host: "nope.school.localhost"}, 404, "", "unknown school"},
		{"malformed host", request{host: "bad_host"}, 400, "", "bad request"},
		{"metrics", request{host: "nairobi.school.localhost", path: "/metrics"}, 404, "", "not found"},
		{"maintenance", request{host: "accra.school.localhost"}, 503, "300", "school under maintenance"},
		{"no instance", request{host: "nairobi.school.localhost"}, 503, "5", "school unavailable"},
	}
	for _, tt := range tests {
		for _, format := range []string{"html", "json"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				rq := tt.rq
				rq.header = http.Header{"Accept": {"text/html,*/*;q=0.8"}}
				if format == "json" {
					rq.header = http.Header{"Accept": {"application/json"}}
				}
				resp := tp.do(t, rq)
				if resp.status != tt.wantStatus || resp.header.Get("Retry-After") != tt.wantRetry {
					t.Fatalf("status %d Retry-After %q, want %d %q", resp.status, resp.header.Get("Retry-After"), tt.wantStatus, tt.wantRetry)
				}
				if resp.header.Get(HeaderRequestID) == "" || resp.header.Get("Cache-Control") != "no-store" {
					t.Errorf("missing X-Request-Id or Cache-Control: %v", resp.header)
				}
				ct := resp.header.Get("Content-Type")
				if format == "json" {
					var body struct {
						Error  string `json:"error"`
						Status int    `json:"status"`
					}
					if err := json.Unmarshal([]byte(resp.body), &body); err != nil || ct != "application/json" {
						t.Fatalf("Content-Type %q, body %q: %v", ct, resp.body, err)
					}
					if body.Error != tt.wantError || body.Status != tt.wantStatus {
						t.Errorf("body = %+v, want error %q status %d", body, tt.wantError, tt.wantStatus)
					}
					return
				}
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(resp.body, "<style>") ||
					strings.Contains(resp.body, "http://") || strings.Contains(resp.body, "https://") {
					t.Errorf("want a self-contained HTML page, got %q:\n%s", ct, resp.body)
				}
			})
		}
	}
}

func TestHeadErrorHasNoBody(t *testing.T) {
	tp := newTestProxy(t, Config{})
	tp.Update(registry.Snapshot{Version: 1})
	resp := tp.do(t, request{method: http.MethodHead, host: "nope.localhost"})
	if resp.status != 404 || resp.body != "" {
		t.Fatalf("HEAD: status %d body %q", resp.status, resp.body)
	}
}

func TestNoHoldWhenDisabled(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: -1})
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")}})
	start := time.Now()
	if resp := tp.do(t, request{host: "nairobi.school.localhost"}); resp.status != 503 {
		t.Fatalf("status %d, want 503", resp.status)
	}
	// A held request would wait out the whole hold (DefaultHoldTimeout
	// with a zero Config); an answer before that was not held, however
	// slow the machine.
	if took := time.Since(start); took >= DefaultHoldTimeout {
		t.Errorf("answered after %s: a negative HoldTimeout should not hold requests", took)
	}
}
