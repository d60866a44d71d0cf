package app

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

// classRoll creates a small school: classes 1A (12), 1B (8), 2A (5);
// every fourth student left, every fifth graduated; enrolled in 2023 or
// 2024 by parity; the names say the class ("Pupil1A").
func (e *env) classRoll() {
	e.t.Helper()
	var rows []store.StudentInput
	n := 0
	for _, c := range []struct {
		class string
		count int
	}{{"1A", 12}, {"1B", 8}, {"2A", 5}} {
		for range c.count {
			n++
			in := store.StudentInput{RegistrationNo: fmt.Sprintf("C-%03d", n), FirstName: "Pupil" + c.class, SecondName: fmt.Sprintf("Roll%03d", n),
				Class: c.class, EnrolledOn: fmt.Sprintf("%d-09-01", 2023+n%2)}
			switch {
			case n%4 == 0:
				in.Status, in.StatusDate = store.StatusLeft, "2024-12-01"
			case n%5 == 0:
				in.Status, in.StatusDate = store.StatusGraduated, "2024-12-01"
			}
			rows = append(rows, in)
		}
	}
	for _, in := range rows {
		if _, err := e.store.CreateStudent(e.t.Context(), in); err != nil {
			e.t.Fatalf("create %s: %v", in.RegistrationNo, err)
		}
	}
}

// TestListFilters: the sidebar filters narrow the list, combine with each
// other, the search, the sort and the page size, show their counts, and
// bad values are clear errors.
func TestListFilters(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.classRoll()
	b := e.browser()
	b.login()
	all := b.get("/admin/students/")
	wantBody(t, all, `id="filters"`, "By class", `href="/admin/students/?class=1A">1A</a> <span class="text-body-secondary">(12)</span>`,
		"By status", `href="/admin/students/?status=left">Left</a>`, "By enrolment year", `href="/admin/students/?year=2024">2024</a>`)
	for _, tt := range []struct {
		query string
		code  int
		rows  int
		want  []string
	}{
		{"?class=1A", 200, 12, []string{"12 matching the filters", `<strong aria-current="true">1A</strong>`, "Clear all filters"}},
		{"?class=1B&status=left", 200, 2, nil}, // C-016, C-020
		{"?class=1A&year=2024", 200, 6, nil},
		{"?class=2A&q=roll025", 200, 1, []string{">C-025</a>"}},
		{"?class=1A&per_page=25&sort=-second_name", 200, 12, []string{`name="class" value="1A"`, `name="per_page" value="25"`, `href="/admin/students/?class=1A&amp;per_page=25&amp;sort=first_name"`}},
		{"?class=1A&per_page=25&page=2", 404, 0, []string{"This list has 1 page."}},
		{"?class=9Z", 200, 0, []string{"No students match these filters."}},
		{"?status=expelled", 400, 0, []string{"“expelled” is not a status: choose enrolled, graduated, left, suspended."}},
		{"?year=twenty", 400, 0, []string{"“twenty” is not a year."}},
		{"?year=0", 400, 0, []string{"is not a year"}},
	} {
		r := b.get("/admin/students/" + tt.query)
		if r.code != tt.code {
			t.Errorf("%s: %d, want %d", tt.query, r.code, tt.code)
			continue
		}
		if got := rowsOn(r.body); got != tt.rows {
			t.Errorf("%s: %d rows, want %d", tt.query, got, tt.rows)
		}
		for _, s := range tt.want {
			if !strings.Contains(r.body, s) {
				t.Errorf("%s: no %q", tt.query, s)
			}
		}
	}
	// A filter link keeps the search, the sort and the page size; goes to page 1.
	r := b.get("/admin/students/?q=pupil&sort=-second_name&per_page=25")
	wantBody(t, r, `href="/admin/students/?class=1B&amp;per_page=25&amp;q=pupil&amp;sort=-second_name">1B</a>`)
	// The export and the print view follow the filters.
	r = b.get("/admin/students/?class=2A")
	wantBody(t, r, `href="/admin/students/export/?class=2A"`, `href="/admin/students/print/?class=2A"`)
	exp := b.get("/admin/students/export/?class=2A&bom=0")
	if got := strings.Count(exp.body, "\n"); got != 6 {
		t.Errorf("export of class 2A: %d lines, want 6:\n%s", got, exp.body)
	}
	// Select all matching the filter: exactly the class.
	form := map[string][]string{"csrf_token": {csrfOf(t, r.body)}, "select_across": {"1"}, "back": {"class=1B&status=left"}}
	r = b.post("/admin/students/delete-selected/", form)
	wantBody(t, r, "delete all 2 students?")
}

// TestPrintOneClassAPage: the print view groups the list by class, one
// printed page each (the print CSS starts a page at each group).
func TestPrintOneClassAPage(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.classRoll()
	b := e.browser()
	b.login()
	r := b.get("/admin/students/print/")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "25 students, 3 classes", "Class 1A", "Class 1B", "Class 2A")
	if got := strings.Count(r.body, `<section class="print-group">`); got != 3 {
		t.Errorf("%d groups, want 3", got)
	}
	i, j, k := strings.Index(r.body, "Class 1A"), strings.Index(r.body, "Class 1B"), strings.Index(r.body, "Class 2A")
	if !(i < j && j < k) || strings.Contains(r.body[i:j], "Pupil1B") || strings.Contains(r.body[j:k], "Pupil1A") {
		t.Error("classes mixed or out of order")
	}
	r = b.get("/admin/students/print/?class=1B")
	wantBody(t, r, "8 students, 1 class:")
	wantNoBody(t, r, "Class 1A")
}

// TestFiltersCrossTenant: school B's sidebar counts and filtered lists
// hold nothing of school A's classes.
func TestFiltersCrossTenant(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	bEnv := newEnv(t, "beta", envOptions{})
	a.classRoll()
	if _, err := bEnv.store.CreateStudent(t.Context(), store.StudentInput{RegistrationNo: "B-1", FirstName: "Beta", SecondName: "Only", Class: "1A"}); err != nil {
		t.Fatal(err)
	}
	b := bEnv.browser()
	b.login()
	r := b.get("/admin/students/?class=1A")
	wantBody(t, r, `<strong aria-current="true">1A</strong> <span class="text-body-secondary">(1)</span>`, ">B-1</a>")
	wantNoBody(t, r, "1B", "2A", "Pupil1A")
	if got := rowsOn(r.body); got != 1 {
		t.Errorf("B's class 1A has %d rows, want 1", got)
	}
	wantNoBody(t, b.get("/admin/students/print/?class=1A"), "Pupil1A")
}

// TestBulkChangeClassAndStatus: the change-class and change-status
// actions ask for the value, state how many, and change exactly the
// selection (here: all matching a filter); a bad value is shown on the
// form, nothing changed.
func TestBulkChangeClassAndStatus(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.classRoll()
	b := e.browser()
	b.login()
	list := b.get("/admin/students/?class=2A")
	wantBody(t, list, `formaction="/admin/students/change-status/"`, `formaction="/admin/students/change-class/"`)
	form := map[string][]string{"csrf_token": {csrfOf(t, list.body)}, "select_across": {"1"}, "back": {"class=2A"}}
	r := b.post("/admin/students/change-class/", form)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Change the class of all 5 students", `name="expect" value="5"`, `<option value="1B">`, "Change 5 students")
	form["confirm"], form["expect"], form["class"] = []string{"yes"}, []string{"5"}, []string{strings.Repeat("x", 300)}
	r = b.post("/admin/students/change-class/", form)
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, `id="value-error"`)
	form["class"] = []string{"3A"}
	r = b.post("/admin/students/change-class/", form)
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, b.follow(r), "Successfully changed the class of 5 students.")
	if got := rowsOn(b.get("/admin/students/?class=3A").body); got != 5 {
		t.Errorf("class 3A has %d students, want 5", got)
	}
	if got := rowsOn(b.get("/admin/students/?class=1A").body); got != 12 {
		t.Errorf("class 1A has %d students, want 12 (untouched)", got)
	}
	// Status of two ticked students.
	pg, err := e.store.ListStudents(t.Context(), store.ListOptions{Class: "1A", Status: store.StatusEnrolled})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{fmt.Sprint(pg.Students[0].ID), fmt.Sprint(pg.Students[1].ID)}
	r = b.post("/admin/students/change-status/", map[string][]string{"csrf_token": {csrfOf(t, list.body)}, "ids": ids, "confirm": {"yes"}, "status": {"suspended"}})
	wantCode(t, r, http.StatusSeeOther)
	if got := rowsOn(b.get("/admin/students/?status=suspended").body); got != 2 {
		t.Errorf("%d suspended, want 2", got)
	}
}

// TestFilterItemsAsTemplate: the filter values written in Go are the
// bytes the template's {{range}} wrote, whatever the labels and URLs hold.
func TestFilterItemsAsTemplate(t *testing.T) {
	const tmpl = `{{- range .}}
    <li>{{if .Current}}<strong aria-current="true">{{.Label}}</strong>{{else}}<a href="{{.URL}}">{{.Label}}</a>{{end}}{{if ge .Count 0}} <span class="text-body-secondary">({{num .Count}})</span>{{end}}</li>
    {{- end}}`
	tp := template.Must(template.New("items").Funcs(template.FuncMap{"num": localeFuncs(defaultLocale())["num"]}).Parse(tmpl))
	for _, choices := range [][]filterChoice{
		nil,
		{{Label: "All", URL: "/admin/students/?q=a%26b&sort=-first_name", Count: -1, Current: true}},
		{{Label: "All", URL: "/admin/students/", Count: -1}, {Label: `<b>"1A"</b> & 'x' +1`, URL: "/admin/students/?class=%3Cb%3E&per_page=25", Count: 12345},
			{Label: "Zoë\x00", URL: "/admin/students/?class=Zo%C3%AB", Count: 0, Current: true}},
	} {
		var want strings.Builder
		if err := tp.Execute(&want, choices); err != nil {
			t.Fatal(err)
		}
		if got := string(filterItems(defaultLocale(), choices)); got != want.String() {
			t.Errorf("filter items:\n%s\nwant (html/template):\n%s", got, want.String())
		}
	}
}

// TestClassesWithoutCase: "Form 2B", "form 2b" and " Form  2B " are one
// class in the sidebar and its count, the class filter, the print view's
// groups and a change-class target; B's own "FORM 2B" is never counted
// or shown at A, nor A's at B.
func TestClassesWithoutCase(t *testing.T) {
	a := newEnv(t, "gamma", envOptions{})
	bEnv := newEnv(t, "delta", envOptions{})
	for i, c := range []string{"Form 2B", "form 2b", " Form  2B ", "Form 1A"} {
		if _, err := a.store.CreateStudent(t.Context(), store.StudentInput{RegistrationNo: fmt.Sprintf("G-%d", i),
			FirstName: "Gamma", SecondName: fmt.Sprintf("Pupil%d", i), Class: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bEnv.store.CreateStudent(t.Context(), store.StudentInput{RegistrationNo: "D-1", FirstName: "Delta",
		SecondName: "Only", Class: "FORM 2B"}); err != nil {
		t.Fatal(err)
	}
	b := a.browser()
	b.login()
	for _, q := range []string{"Form+2B", "form+2b", "FORM++2B+", "f%C3%B6rm+2b"} {
		r := b.get("/admin/students/?class=" + q)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, `<strong aria-current="true">Form 2B</strong> <span class="text-body-secondary">(3)</span>`)
		wantNoBody(t, r, "Pupil3", "Delta", "(4)")
		if got := rowsOn(r.body); got != 3 {
			t.Errorf("class %s: %d rows, want 3", q, got)
		}
	}
	p := b.get("/admin/students/print/")
	if n := strings.Count(p.body, `class="print-group"`); n != 2 {
		t.Errorf("print view: %d groups, want 2 (Form 1A, Form 2B)\n%s", n, p.body)
	}
	wantNoBody(t, p, "Delta", "form 2b")
	// A change-class target spelled otherwise joins the class.
	pg, err := a.store.ListStudents(t.Context(), store.ListOptions{Class: "form 1a"})
	if err != nil || pg.Total != 1 {
		t.Fatalf("form 1a: %+v %v", pg, err)
	}
	list := b.get("/admin/students/?class=Form+1A")
	form := map[string][]string{"csrf_token": {csrfOf(t, list.body)}, "select_across": {"1"}, "back": {"class=Form+1A"},
		"confirm": {"yes"}, "expect": {"1"}, "class": {"  FORM 2b "}}
	wantCode(t, b.post("/admin/students/change-class/", form), http.StatusSeeOther)
	r := b.get("/admin/students/?class=Form+2B")
	wantBody(t, r, `(4)</span>`)
	if got := rowsOn(r.body); got != 4 {
		t.Errorf("after the change: %d rows, want 4", got)
	}
	// B sees its own one student only.
	bb := bEnv.browser()
	bb.login()
	r = bb.get("/admin/students/?class=form+2b")
	wantBody(t, r, `<strong aria-current="true">FORM 2B</strong> <span class="text-body-secondary">(1)</span>`, ">D-1</a>")
	wantNoBody(t, r, "Gamma", "Form 1A")
	wantNoBody(t, bb.get("/admin/students/print/?class=Form+2B"), "Gamma")
}
