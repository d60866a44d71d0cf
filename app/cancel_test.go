package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A client that goes away mid-request is not a server error: the request
// is recorded as 499 and nothing is logged at ERROR level.
func TestClientGoneIsNotAServerError(t *testing.T) {
	e := newEnv(t, "cancel", envOptions{})
	e.addStudent("C/1", "Ama", "Owusu")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.host()+"/", nil)
	rec := httptest.NewRecorder()
	e.srv.Config.Handler.ServeHTTP(rec, req)
	if rec.Code != statusClientClosed {
		t.Fatalf("status %d, want %d", rec.Code, statusClientClosed)
	}
	if logs := e.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Fatalf("a cancelled request was logged as an error:\n%s", logs)
	}
	if v, ok := e.metric(MetricRequests, map[string]string{"code": "499"}); !ok || v != 1 {
		t.Fatalf("%s{code=499} = %v (found %v), want 1", MetricRequests, v, ok)
	}
}

// Issue 25: a flood of cancelled requests is counted, and logged once,
// not a line each.
func TestCancelledRequestsLogSampled(t *testing.T) {
	e := newEnv(t, "cancel", envOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.host()+"/", nil)
		e.srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	if v, _ := e.metric(MetricRequests, map[string]string{"code": "499"}); v != 50 {
		t.Errorf("%s{code=499} = %v, want 50", MetricRequests, v)
	}
	if n := strings.Count(e.logs.String(), `"status":499`); n != 1 {
		t.Errorf("%d log lines for 50 cancelled requests, want the first only (then one per period with the count)", n)
	}
}
