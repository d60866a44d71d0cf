package app

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/store"
)

// perPage is the page size of the public and admin lists.
const perPage = 50

// maxQueryLen bounds the search text.
const maxQueryLen = 200

// listParams are the query parameters of a list page.
type listParams struct {
	Public bool // the public register: the query matches numbers and names only
	Query  string
	Sort   string // validated store sort key; "" means registration_no
	Page   int
}

var sortKeys = map[string]bool{"registration_no": true, "first_name": true, "second_name": true, "id": true}

func parseListParams(r *http.Request, sortable bool) listParams {
	q := r.URL.Query()
	// Any bytes may arrive: NUL, invalid UTF-8, a character cut by the
	// length limit. CleanQuery keeps what can be searched for.
	p := listParams{Query: store.CleanQuery(q.Get("q"), maxQueryLen), Page: 1}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 {
		p.Page = n
	}
	if sortable {
		if k := q.Get("sort"); sortKeys[strings.TrimPrefix(k, "-")] {
			p.Sort = k
		}
	}
	return p
}

// values encodes the parameters for links, leaving out defaults.
func (p listParams) values(page int) url.Values {
	v := url.Values{}
	if p.Query != "" {
		v.Set("q", p.Query)
	}
	if p.Sort != "" && p.Sort != "registration_no" {
		v.Set("sort", p.Sort)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

func (p listParams) link(base string, page int) string {
	if enc := p.values(page).Encode(); enc != "" {
		return base + "?" + enc
	}
	return base
}

// listStudents fetches one page (the store turns a page past the end into
// the last page).
func (s *server) listStudents(ctx context.Context, p listParams) (store.Page, error) {
	o := store.ListOptions{Query: p.Query, Sort: p.Sort, Page: p.Page, PerPage: perPage, NamesOnly: p.Public}
	pg, err := s.store.ListStudents(ctx, o)
	if err != nil {
		return pg, fmt.Errorf("list students: %w", err)
	}
	if p.Query == "" {
		s.setStudentsGauge(pg.Total) // a free, exact count
	}
	return pg, nil
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
	return makePager(pg.Total, pg.Page, pg.Pages, perPage, len(pg.Students), func(n int) string { return p.link(base, n) })
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
	p := parseListParams(r, false)
	p.Public = true
	set, err := s.store.Settings(r.Context())
	if err != nil {
		s.serverError(w, r, fmt.Errorf("public list: %w", err))
		return
	}
	pg, err := s.listStudents(r.Context(), p)
	if err != nil {
		s.dbError(w, r, err)
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
		}{pg.Students, publicRows(pg.Students, set.PublicFields), p.Query, newPager(pg, p, "/"), fieldLabelsOf(set.PublicFields)},
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
