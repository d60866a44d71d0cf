package app

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/campus-saas/campus/store"
)

// readyTimeout bounds the database checks of /readyz.
const readyTimeout = 2 * time.Second

// BusyHeader, on a /healthz or /readyz answer, says how many imports or bulk
// deletes of the school are running (store.OperationsRunning): work that
// an idle stop would roll back, so the supervisor keeps the app while it
// is there (deploy/supervisor reads it by the same name). Absent: none.
const BusyHeader = "Campus-Busy"

// probeHeaders are the headers of /healthz and /readyz: plain text, not
// cached, and BusyHeader while operations run (from memory).
func (s *server) probeHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if n := s.store.OperationsRunning(); n > 0 {
		w.Header().Set(BusyHeader, strconv.Itoa(n))
	}
}

// handleHealthz says the process is alive, and whether it runs an import
// or a bulk delete (BusyHeader, from memory); it touches nothing else.
func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.probeHeaders(w)
	w.Write([]byte("ok\n"))
}

// handleReadyz says the tenant's database is reachable and at the schema
// this binary knows. The body names the reason without details that could
// matter to an attacker; the log has the full error.
func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	s.probeHeaders(w)
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	reason, err := s.ready(ctx)
	if err != nil {
		s.log.Warn("not ready", "request_id", stateOf(r).id, "reason", reason, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready: " + reason + "\n"))
		return
	}
	// Ready: the supervisor routes the first request now. Its students
	// start loading into memory at once rather than at that request
	// (store.Preload; not before ready, which it would slow down).
	s.preload.Do(func() { s.store.Preload(context.WithoutCancel(r.Context())) })
	w.Write([]byte("ready\n"))
}

// ready checks the schema version: one read, which also says the database
// answers. Only when it fails is the database pinged, to tell an
// unreachable one from a failed schema check.
func (s *server) ready(ctx context.Context) (reason string, err error) {
	err = s.store.CheckSchema(ctx)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, store.ErrSchemaTooNew):
		return store.ErrSchemaTooNew.Error(), err
	case errors.Is(err, store.ErrNotMigrated):
		return store.ErrNotMigrated.Error(), err
	}
	if perr := s.store.Ping(ctx); perr != nil {
		return "database unreachable", perr
	}
	return "schema check failed", err
}

// handleMetrics serves the Gatherer. A scrape refreshes the students gauge
// only when it is older than gaugeRefresh, so the gauge stays current on an
// idle site without a count per scrape.
func (s *server) handleMetrics() http.HandlerFunc {
	h := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		s.refreshStudentsGauge(ctx, false)
		cancel()
		h.ServeHTTP(w, r)
	}
}
