package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The school's database answering SQLITE_BUSY (another writer of the same
// school held its lock past the busy wait) is a busy site, not a broken
// one: 503 with Retry-After, logged as a warning; other errors stay 500.
func TestBusyDatabaseIs503(t *testing.T) {
	e := newEnv(t, "busy", envOptions{})
	var logs syncBuffer
	s, err := newServer(Config{Tenant: e.tenant, Store: e.store, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	busy := fmt.Errorf("authenticate: reserve login attempt: %w", mongo.CommandError{Code: 1, Name: "InternalError",
		Message: "[collection.go:135 sqlite.(*collection).InsertAll.func1] database is locked (5) (SQLITE_BUSY)"})
	for _, tc := range []struct {
		err        error
		code       int
		retryAfter string
	}{
		{busy, http.StatusServiceUnavailable, "5"},
		{errors.New("something else"), http.StatusInternalServerError, ""},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://"+e.host()+"/admin/login/", nil)
		rec := httptest.NewRecorder()
		s.serverError(rec, req, tc.err)
		if rec.Code != tc.code || rec.Header().Get("Retry-After") != tc.retryAfter {
			t.Errorf("%v: %d, Retry-After %q; want %d, %q", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.code, tc.retryAfter)
		}
		if strings.Contains(rec.Body.String(), "SQLITE") || strings.Contains(rec.Body.String(), "something else") {
			t.Errorf("the page shows the cause: %s", rec.Body.String())
		}
	}
	if l := logs.String(); !strings.Contains(l, `"level":"WARN","msg":"database busy"`) {
		t.Errorf("busy not logged as a warning:\n%s", l)
	}
}
