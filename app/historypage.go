package app

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/store"
)

// The whole history (/admin/history/): filters by who, action and date
// range, a page at a time, newest first, and the same selection as CSV.
// A superuser sees every entry (also those about users and groups);
// anyone else sees only their own actions, whatever the query says.

const historyURL = "/admin/history/"

func init() {
	staffViews = append(staffViews, "admin_history_list")
}

// historyActions are the actions the filter offers.
var historyActions = []store.Action{store.ActionAdd, store.ActionChange, store.ActionDelete,
	store.ActionBulkDelete, store.ActionImport, store.ActionResetLink, store.ActionPasswordSet}

// historyQuery is the filter as typed (dates as YYYY-MM-DD, both ends
// included) and what it selects.
type historyQuery struct {
	User, Action, From, Until string
	Op                        string // one operation's entries (an import, a bulk change or delete)
	Page                      int
	filter                    store.HistoryFilter
	Errors                    map[string]string
}

const dateLayout = "2006-01-02"

// parseHistoryQuery reads the filter; a non-superuser's is pinned to
// their own actions. Dates are days in the school's zone.
func parseHistoryQuery(r *http.Request, zone *time.Location) historyQuery {
	q := r.URL.Query()
	h := historyQuery{
		User: strings.TrimSpace(q.Get("user")), Action: q.Get("action"),
		From: strings.TrimSpace(q.Get("from")), Until: strings.TrimSpace(q.Get("until")),
		Page: 1, Errors: map[string]string{},
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 {
		h.Page = n
	}
	if op := strings.TrimSpace(q.Get("op")); op != "" {
		n, err := strconv.ParseInt(op, 10, 64)
		if err != nil || n <= 0 {
			h.Errors["op"] = "Operation numbers are whole numbers from 1."
		} else {
			h.Op, h.filter.Op = strconv.FormatInt(n, 10), n
		}
	}
	sess := stateOf(r).session
	h.filter.Accounts = sess.IsSuperuser
	if !sess.IsSuperuser {
		h.User = sess.Username
	}
	h.filter.Username = h.User
	switch {
	case h.Action == "":
	case actionKnown(store.Action(h.Action)):
		h.filter.Action = store.Action(h.Action)
	default:
		h.Errors["action"] = "Choose an action from the list."
		h.Action = ""
	}
	if h.From != "" {
		t, err := time.ParseInLocation(dateLayout, h.From, zone)
		if err != nil {
			h.Errors["from"] = "Enter a date as YYYY-MM-DD."
		}
		h.filter.From = t
	}
	if h.Until != "" {
		t, err := time.ParseInLocation(dateLayout, h.Until, zone)
		if err != nil {
			h.Errors["until"] = "Enter a date as YYYY-MM-DD."
		} else {
			h.filter.Until = t.AddDate(0, 0, 1) // the whole last day
		}
	}
	if !h.filter.From.IsZero() && !h.filter.Until.IsZero() && !h.filter.From.Before(h.filter.Until) {
		h.Errors["until"] = "The end date is before the start date."
	}
	return h
}

func actionKnown(a store.Action) bool {
	for _, k := range historyActions {
		if k == a {
			return true
		}
	}
	return false
}

// values are the filter's URL parameters (without the page).
func (h historyQuery) values() url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"user": h.User, "action": h.Action, "from": h.From, "until": h.Until, "op": h.Op} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return v
}

func (h historyQuery) link(base string, page int) string {
	v := h.values()
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return base
	}
	return base + "?" + v.Encode()
}

type historyList struct {
	Query     historyQuery
	Rows      []historyRow
	Pager     pager
	Users     []string // for the "who" filter (superusers)
	Actions   []store.Action
	ExportURL string
	Own       bool // only the user's own actions
}

func (s *server) handleHistory(w http.ResponseWriter, r *http.Request) {
	h := parseHistoryQuery(r, s.locale(r).zone)
	status := http.StatusOK
	if len(h.Errors) > 0 {
		status = http.StatusBadRequest
	}
	pg, err := s.store.FindHistory(r.Context(), h.filter, h.Page, 0)
	if err != nil {
		s.dbError(w, r, err)
		return
	}
	link := func(n int) string { return h.link(historyURL, n) }
	d := historyList{Query: h, Rows: historyRows(s.locale(r), pg.Entries), Actions: historyActions,
		Pager:     makePager(pg.Total, pg.Page, pg.Pages, pg.PerPage, len(pg.Entries), link),
		ExportURL: h.link(historyURL+"export/", 1), Own: !stateOf(r).session.IsSuperuser}
	if !pg.Counted { // not counted (FerretDB): the pages up to the next one
		d.Pager = makePager(0, pg.Page, pg.Page+1, pg.PerPage, len(pg.Entries), link)
		d.Pager.Uncounted = true
	}
	if !d.Own {
		if d.Users, err = s.store.HistoryUsernames(r.Context()); err != nil {
			s.dbError(w, r, err)
			return
		}
	}
	title := "History"
	if d.Own {
		title = "My actions"
	}
	s.render(w, r, status, "admin_history_list", &page{
		Title: title, Admin: true, Crumbs: crumbs(title), Data: d,
	})
}

// handleHistoryExport sends the entries the filter selects as CSV, oldest
// first (store.ExportHistoryWhere: formula cells guarded).
func (s *server) handleHistoryExport(w http.ResponseWriter, r *http.Request) {
	zone := s.locale(r).zone
	h := parseHistoryQuery(r, zone)
	if len(h.Errors) > 0 {
		s.renderError(w, r, http.StatusBadRequest)
		return
	}
	h.filter.Zone = zone
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="history-%s.csv"`, s.now().In(zone).Format(dateLayout)))
	cw := &countingWriter{w: w}
	if err := s.store.ExportHistoryWhere(r.Context(), cw, "csv", h.filter); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			s.dbError(w, r, err)
			return
		}
		// The answer is under way: the log says it was cut short.
		s.log.Error("history export failed", "request_id", stateOf(r).id, "err", err)
	}
}

// countingWriter tells whether anything was written.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
