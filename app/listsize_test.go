package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

// fill imports n students R-0001… (first names Pupil, second names
// Zed<n+1-i>) in one operation.
func (e *env) fill(n int) {
	e.t.Helper()
	rows := make([]store.StudentInput, n)
	for i := range rows {
		rows[i] = store.StudentInput{RegistrationNo: fmt.Sprintf("R-%04d", i+1), FirstName: "Pupil", SecondName: fmt.Sprintf("Zed%04d", n-i)}
	}
	if got, rowErrs, err := e.store.ImportStudents(e.t.Context(), rows, nil); err != nil || len(rowErrs) > 0 || got != n {
		e.t.Fatalf("import %d: %d, %v, %v", n, got, rowErrs, err)
	}
}

// rowsOn counts the student rows of an admin list page.
func rowsOn(body string) int { return strings.Count(body, `<th scope="row">`) }

func TestListPageSizes(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.fill(230)
	b := e.browser()
	b.login()
	for _, tt := range []struct {
		query      string
		code, rows int
		want       []string // in the body
		not        []string
	}{
		{"", 200, 50, []string{"230 students", "showing 1–50", ">R-0050</a>", `<strong aria-current="true">50</strong>`, `href="/admin/students/?per_page=all">All</a>`}, []string{">R-0051</a>"}},
		{"?per_page=25", 200, 25, []string{"showing 1–25", `href="/admin/students/?page=2&amp;per_page=25"`, `<strong aria-current="true">25</strong>`}, []string{">R-0026</a>"}},
		{"?per_page=25&page=10", 200, 5, []string{"showing 226–230", ">R-0230</a>"}, nil},
		{"?per_page=100&page=3", 200, 30, []string{"showing 201–230"}, nil},
		{"?per_page=50", 200, 50, []string{`href="/admin/students/?page=2"`}, []string{"per_page=50"}}, // the default is not spelt out
		{"?per_page=all", 200, 230, []string{"230 students", ">R-0230</a>", `<strong aria-current="true">All</strong>`}, []string{`aria-label="Pages"`}},
		// Kept across sorting, searching and paging: in the column links, the search form and the pager.
		{"?per_page=100&sort=-second_name", 200, 100, []string{`href="/admin/students/?per_page=100&amp;sort=second_name"`, `name="per_page" value="100"`, `href="/admin/students/?page=2&amp;per_page=100&amp;sort=-second_name"`}, nil},
		{"?per_page=25&q=zed01", 200, 25, []string{"100 matching", `href="/admin/students/?page=2&amp;per_page=25&amp;q=zed01"`}, nil},
		{"?q=pupil&per_page=all", 200, 230, nil, nil},
		// Past the end: 404 saying how many pages, linking the last.
		{"?page=99", 404, 0, []string{"There is no page 99", "This list has 5 pages.", `href="/admin/students/?page=5"`, "Go to the last page (5)"}, nil},
		{"?per_page=100&page=4&q=pupil", 404, 0, []string{"This list has 3 pages.", `href="/admin/students/?page=3&amp;per_page=100&amp;q=pupil"`}, nil},
		{"?per_page=all&page=2", 404, 0, []string{"This list has 1 page."}, nil},
		{"?q=nobody&page=2", 404, 0, []string{"This list has 1 page."}, nil},
		// Bad values: clear 400s.
		{"?page=0", 400, 0, []string{"“0” is not a page number"}, nil},
		{"?page=abc", 400, 0, []string{"“abc” is not a page number"}, nil},
		{"?page=-1", 400, 0, []string{"is not a page number"}, nil},
		{"?per_page=7", 400, 0, []string{"“7” is not a page size: choose 25, 50, 100 or all."}, nil},
		{"?per_page=1000", 400, 0, []string{"is not a page size"}, nil},
		{"?per_page=" + strings.Repeat("9", 40), 400, 0, []string{"…” is not a page size"}, nil},
	} {
		r := b.get("/admin/students/" + tt.query)
		if r.code != tt.code {
			t.Errorf("%s: status %d, want %d", tt.query, r.code, tt.code)
			continue
		}
		if got := rowsOn(r.body); got != tt.rows {
			t.Errorf("%s: %d rows, want %d", tt.query, got, tt.rows)
		}
		for _, s := range tt.want {
			if !strings.Contains(r.body, s) {
				t.Errorf("%s: no %q in the page", tt.query, s)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(r.body, s) {
				t.Errorf("%s: %q in the page", tt.query, s)
			}
		}
	}
	// The page size is kept in the links to a student and back.
	r := b.get("/admin/students/?per_page=25&page=2")
	wantBody(t, r, `/change/?back=page%3D2%26per_page%3D25"`)
}

// TestListShowAllBound: "all" is offered up to maxShowAll students only;
// asked for beyond it, a clear 400 with a link to pages of 100.
func TestListShowAllBound(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.fill(maxShowAll + 1)
	b := e.browser()
	b.login()
	r := b.get("/admin/students/")
	wantCode(t, r, http.StatusOK)
	wantNoBody(t, r, "per_page=all")
	r = b.get("/admin/students/?per_page=all")
	wantCode(t, r, http.StatusBadRequest)
	wantBody(t, r, "“All” shows up to 1,000 students on one page; this list has 1,001.", `href="/admin/students/?per_page=100"`)
	// A search small enough: offered and shown.
	r = b.get("/admin/students/?q=zed0001&per_page=all")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, `<strong aria-current="true">All</strong>`)
}
