package app

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// perPage is the default page size of the public and admin lists.
const perPage = 50

// Page sizes a list may be asked for (?per_page=), as Django's
// list_per_page; "all" (perPageAll) shows every row on one page, but only
// up to maxShowAll rows (Django's list_max_show_all): beyond it, it is
// not offered, and asking for it is a clear error.
var perPageChoices = []int{25, 50, 100}

const (
	perPageAll = -1
	maxShowAll = store.MaxPerPage
)

// maxQueryLen bounds the search text.
const maxQueryLen = 200

// listParams are the query parameters of a list page.
type listParams struct {
	Public  bool // the public register: the query matches numbers and names only
	Query   string
	Sort    string // validated store sort key; "" means registration_no
	Page    int
	PerPage int // one of perPageChoices or perPageAll; 0 means perPage
	// Filters (Django's list_filter; "" or 0: any): a class exactly, a
	// status of store.Statuses, an enrolment year.
	Class  string
	Status string
	Year   int
}

// listParamError is a query parameter a list cannot use: answered 400
// with what is wrong.
type listParamError struct {
	format string // in English, the key of the catalogues
	args   []any
}

// The list's bad-parameter messages (listParamError formats).
const (
	msgNotAPage     = "“%s” is not a page number: pages are numbered from 1."
	msgNotAStatus   = "“%s” is not a status: choose %s."
	msgNotAYear     = "“%s” is not a year."
	msgNotAPageSize = "“%s” is not a page size: choose 25, 50, 100 or all."
)

func (e *listParamError) Error() string { return fmt.Sprintf(e.format, e.args...) }

// statusChoices are the statuses a list's status parameter takes, as the
// address spells them; in another language each with its name there
// ("enrolled (inscrit)").
type statusChoices struct{}

func (statusChoices) String() string { return strings.Join(store.Statuses, ", ") }

func (statusChoices) in(l *locale) string {
	if l.lang.Code == i18n.Default {
		return statusChoices{}.String()
	}
	out := make([]string, len(store.Statuses))
	for i, st := range store.Statuses {
		out[i] = st + " (" + strings.ToLower(l.T(statusLabel(st))) + ")"
	}
	return strings.Join(out, ", ")
}

func parseListParams(r *http.Request, sortable bool) (listParams, error) {
	q := r.URL.Query()
	// Any bytes may arrive: NUL, invalid UTF-8, a character cut by the
	// length limit. CleanQuery keeps what can be searched for.
	p := listParams{Query: store.CleanQuery(q.Get("q"), maxQueryLen), Page: 1}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, &listParamError{msgNotAPage, []any{clip(v)}}
		}
		p.Page = n
	}
	if sortable {
		if k := q.Get("sort"); sortKeys[strings.TrimPrefix(k, "-")] {
			p.Sort = k
		}
		p.Class = store.CleanQuery(q.Get("class"), maxQueryLen)
		if v := q.Get("status"); v != "" {
			if !slices.Contains(store.Statuses, v) {
				return p, &listParamError{msgNotAStatus, []any{clip(v), statusChoices{}}}
			}
			p.Status = v
		}
		if v := q.Get("year"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 9999 {
				return p, &listParamError{msgNotAYear, []any{clip(v)}}
			}
			p.Year = n
		}
		switch v := q.Get("per_page"); v {
		case "":
		case "all":
			p.PerPage = perPageAll
		default:
			n, err := strconv.Atoi(v)
			if err != nil || !slices.Contains(perPageChoices, n) {
				return p, &listParamError{msgNotAPageSize, []any{clip(v)}}
			}
			if n != perPage {
				p.PerPage = n
			}
		}
	}
	return p, nil
}

// clip shortens a bad value for an error message.
func clip(v string) string {
	if r := []rune(v); len(r) > 20 {
		return string(r[:20]) + "…"
	}
	return v
}

var sortKeys = map[string]bool{"registration_no": true, "first_name": true, "second_name": true, "id": true}

// values encodes the parameters for links, leaving out defaults.
func (p listParams) values(page int) url.Values {
	v := url.Values{}
	if p.Query != "" {
		v.Set("q", p.Query)
	}
	if p.Sort != "" && p.Sort != "registration_no" {
		v.Set("sort", p.Sort)
	}
	if p.Class != "" {
		v.Set("class", p.Class)
	}
	if p.Status != "" {
		v.Set("status", p.Status)
	}
	if p.Year != 0 {
		v.Set("year", strconv.Itoa(p.Year))
	}
	switch p.PerPage {
	case 0, perPage:
	case perPageAll:
		v.Set("per_page", "all")
	default:
		v.Set("per_page", strconv.Itoa(p.PerPage))
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

// options are the store's options for the list's page.
func (p listParams) options() store.ListOptions {
	return store.ListOptions{Query: p.Query, Sort: p.Sort, Page: p.Page, PerPage: p.size(), Class: p.Class, Status: p.Status, EnrolledYear: p.Year, NamesOnly: p.Public}
}

// size is the page size the store is asked for.
func (p listParams) size() int {
	switch p.PerPage {
	case 0:
		return perPage
	case perPageAll:
		return maxShowAll
	}
	return p.PerPage
}

func (p listParams) link(base string, page int) string {
	if enc := p.values(page).Encode(); enc != "" {
		return base + "?" + enc
	}
	return base
}

// listStudents fetches one page (the store turns a page past the end into
// the last page: pastEnd tells).
func (s *server) listStudents(ctx context.Context, p listParams) (store.Page, error) {
	pg, _, err := s.listWith(ctx, p, false)
	return pg, err
}

// listWith is listStudents with, when facets, the sidebar's counts read
// at the same time.
func (s *server) listWith(ctx context.Context, p listParams, facets bool) (store.Page, store.Facets, error) {
	o := p.options()
	var pg store.Page
	var f store.Facets
	var err error
	if facets {
		pg, f, err = s.store.ListStudentsWithFacets(ctx, o)
	} else {
		pg, err = s.store.ListStudents(ctx, o)
	}
	if err != nil {
		return pg, f, fmt.Errorf("list students: %w", err)
	}
	if p.Query == "" && !o.Filtered() {
		s.setStudentsGauge(pg.Total) // a free, exact count
	}
	return pg, f, nil
}

// pager is the pagination bar of a list.
type pager struct {
	First, Last, Total int64
	Page, Pages        int
	Prev, Next         string // URLs; empty at the ends
	Items              []pagerItem
	Uncounted          bool // Total and Pages unknown: only that a next page exists
}

type pagerItem struct {
	Num     int
	URL     string
	Current bool
	Gap     bool // an ellipsis
}

func newPager(pg store.Page, p listParams, base string) pager {
	return makePager(pg.Total, pg.Page, pg.Pages, pg.PerPage, len(pg.Students), func(n int) string { return p.link(base, n) })
}

// listProblem answers a list request that cannot be shown as asked, and
// reports whether it did: a bad parameter (400), a page past the end (404,
// saying how many pages there are, with a link to the last), "all" for
// more rows than maxShowAll (400, with a link to pages of 100).
func (s *server) listProblem(w http.ResponseWriter, r *http.Request, p listParams, err error, pg store.Page, base string, admin bool) bool {
	e := errorPage{Code: http.StatusBadRequest, Heading: s.tr(r, "Bad request")}
	var pe *listParamError
	switch {
	case errors.As(err, &pe):
		args := slices.Clone(pe.args)
		for i, a := range args {
			if sc, ok := a.(statusChoices); ok {
				args[i] = sc.in(s.locale(r))
			}
		}
		e.Message, e.Link, e.LinkTxt = s.tr(r, pe.format, args...), base, s.tr(r, "Go to the first page of the list")
	case err != nil:
		s.dbError(w, r, err)
		return true
	case p.PerPage == perPageAll && pg.Total > int64(maxShowAll):
		e.Heading = s.tr(r, "Too many to show on one page")
		e.Message = s.tr(r, "“All” shows up to %d students on one page; this list has %d. Narrow it with a search or a filter, or see it in pages.", maxShowAll, pg.Total)
		q := p
		q.PerPage = 100
		e.Link, e.LinkTxt = q.link(base, 1), s.tr(r, "See it 100 a page")
	case p.Page > pg.Pages:
		e.Code, e.Heading = http.StatusNotFound, s.tr(r, "There is no page %d", p.Page)
		e.Message = s.tr(r, "This list has %d pages.", pg.Pages)
		e.Link, e.LinkTxt = p.link(base, pg.Pages), s.tr(r, "Go to the last page (%d)", pg.Pages)
	default:
		return false
	}
	pgData := &page{Title: e.Heading, Data: e}
	if admin {
		pgData.Admin, pgData.Crumbs = true, crumbs(e.Heading, studentsCrumb)
	}
	s.render(w, r, e.Code, "error", pgData)
	return true
}

// makePager is the pager of page (of pages, perPage a page, shown rows
// on this one, total in all); link gives a page's URL.
func makePager(total int64, page, pages, perPage, shown int, link func(int) string) pager {
	pr := pager{Total: total, Page: max(page, 1), Pages: pages}
	if shown > 0 {
		pr.First = int64(pr.Page-1)*int64(perPage) + 1
		pr.Last = pr.First + int64(shown) - 1
	}
	if pr.Pages <= 1 {
		return pr
	}
	if pr.Page > 1 {
		pr.Prev = link(pr.Page - 1)
	}
	if pr.Page < pr.Pages {
		pr.Next = link(pr.Page + 1)
	}
	gap := false
	for n := 1; n <= pr.Pages; n++ {
		if n == 1 || n == pr.Pages || (n >= pr.Page-2 && n <= pr.Page+2) {
			pr.Items = append(pr.Items, pagerItem{Num: n, URL: link(n), Current: n == pr.Page})
			gap = false
		} else if !gap {
			pr.Items = append(pr.Items, pagerItem{Gap: true})
			gap = true
		}
	}
	return pr
}

// gaugeRefresh is how often reads may refresh the students gauge.
const gaugeRefresh = 30 * time.Second

func (s *server) setStudentsGauge(n int64) {
	s.gaugeMu.Lock()
	s.gaugeAt = s.now()
	s.gaugeMu.Unlock()
	s.metrics.students.Set(float64(n))
}

// refreshStudentsGauge counts the students after a write, or after a read
// when the gauge is older than gaugeRefresh.
func (s *server) refreshStudentsGauge(ctx context.Context, force bool) {
	s.gaugeMu.Lock()
	due := force || s.now().Sub(s.gaugeAt) >= gaugeRefresh
	s.gaugeMu.Unlock()
	if !due {
		return
	}
	n, err := s.store.CountStudents(ctx)
	if err != nil {
		s.log.Warn("count students for the gauge", "err", err)
		return
	}
	s.setStudentsGauge(n)
}

// handlePublicIndex is the public register: every student of this
// tenant, sorted by registration number, searchable, 50 a page.
func (s *server) handlePublicIndex(w http.ResponseWriter, r *http.Request) {
	p, err := parseListParams(r, false)
	p.Public = true
	set, serr := s.store.Settings(r.Context())
	if serr != nil {
		s.serverError(w, r, fmt.Errorf("public list: %w", serr))
		return
	}
	var pg store.Page
	if err == nil {
		pg, err = s.listStudents(r.Context(), p)
	}
	if s.listProblem(w, r, p, err, pg, "/", false) {
		return
	}
	if p.Query != "" {
		s.refreshStudentsGauge(r.Context(), false)
	}
	s.render(w, r, http.StatusOK, "public_index", &page{
		Title: "Students",
		Data: struct {
			Students []store.Student
			Rows     template.HTML
			Query    string
			Pager    pager
			Columns  []string // the labels of the fields the school publishes
		}{pg.Students, publicRows(pg.Students, set.PublicFields, statusWords(s.locale(r))), p.Query, newPager(pg, p, "/"), fieldLabelsOf(set.PublicFields)},
	})
}

// dbError answers a failed database call: 503 with Retry-After when the database
// did not answer within the deadline (the request was fine; the database
// is busy), the usual 500 otherwise.
func (s *server) dbError(w http.ResponseWriter, r *http.Request, err error) {
	if store.IsTimeout(err) && r.Context().Err() == nil {
		st := stateOf(r)
		s.log.Warn("database too slow", "request_id", st.id, "route", st.route, "err", err)
		w.Header().Set("Retry-After", "5")
		s.renderError(w, r, http.StatusServiceUnavailable)
		return
	}
	s.serverError(w, r, err)
}
