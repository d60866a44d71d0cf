package app

import (
	"errors"
	"net/http"
	"time"

	"github.com/campus-saas/campus/internal/lograte"
	"github.com/campus-saas/campus/store"
)

// When the disk under the tenant's database is full, reads go on (they
// need no space) and every save is answered with a page that says so, in
// words, with the request ID: 503 with Retry-After, the student form
// shown again with what was typed. The log gets one ERROR line naming the
// database and "disk full" when it starts, then one line per
// fullLogEvery with the count, not a line per request; the metric
// MetricWriteErrors counts every refused write.

// fullLogEvery is the period of the "disk full" log lines.
const fullLogEvery = time.Minute

// fullRetryAfter is the Retry-After of the 503: space is freed by people.
const fullRetryAfter = "60"

// msgCannotSave is the explanation of the 503, for the school's staff.
const msgCannotSave = "The school cannot save right now: the disk that holds its data is full. " +
	"Nothing was saved. Everything can still be read. Please tell whoever runs this site (quote the request ID below); " +
	"once they have freed space, send the form again."

func newFullLog(s *server) *lograte.Limiter {
	return lograte.New(fullLogEvery, func(n int, last string) {
		s.log.Error("disk full: writes to the database still fail", "database", s.tenant.Database,
			"count", n, "period", fullLogEvery.String(), "last_request_id", last)
	})
}

// cannotSave records a save refused for lack of space: the request's own
// log line goes down to WARN (the 503 is expected while the disk is
// full), and the first such save after a quiet period gets one ERROR
// line naming the database and "disk full".
func (s *server) cannotSave(r *http.Request, err error) {
	st := stateOf(r)
	st.storageFull = true
	if !s.fullLog.Allow(st.id) {
		return
	}
	var full *store.StorageFullError
	attrs := []any{"database", s.tenant.Database, "request_id", st.id, "route", st.route}
	if errors.As(err, &full) {
		attrs = append(attrs, "code", full.Code, "cause", full.CauseText())
	}
	s.log.Error("disk full: the database cannot save; reads go on", attrs...)
}

// storageFullPage answers a save refused for lack of space.
func (s *server) storageFullPage(w http.ResponseWriter, r *http.Request, err error) {
	s.cannotSave(r, err)
	w.Header().Set("Retry-After", fullRetryAfter)
	e := errorPage{Code: http.StatusServiceUnavailable, Heading: s.tr(r, "The school cannot save right now"),
		Message: s.tr(r, msgCannotSave), RequestID: stateOf(r).id, Link: "/admin/", LinkTxt: s.tr(r, "Go to the admin site")}
	s.render(w, r, http.StatusServiceUnavailable, "error", &page{Title: e.Heading, Data: e})
}
