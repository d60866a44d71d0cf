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
