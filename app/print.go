package app

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/campus-saas/campus/store"
)

// The print view of the admin list: every student the list shows with
// its search, filters and sort (not only the page), one class to a
// printed page (print CSS in app.css: each .print-group starts a page),
// without the site's navigation. Bounded like "select all" (maxPrint).

const maxPrint = maxSelectAll

// printGroup is one class: one printed page (or more).
type printGroup struct {
	Title    string
	Students []store.Student
}

type printView struct {
	Groups  []printGroup
	Total   int64
	Query   string
	Back    backLink
	Printed string // when, in the school's zone
}

// classOf is what the print view groups by: "Form 2B" and "form 2b" are
// one class.
func classOf(st store.Student) string { return store.ClassKey(st.Class) }

func (s *server) handleStudentsPrint(w http.ResponseWriter, r *http.Request) {
	p, err := parseListParams(r, true)
	var first store.Page
	if err == nil {
		o := p.options()
		o.Page, o.PerPage = 1, store.MaxPerPage
		first, err = s.store.ListStudents(r.Context(), o)
	}
	if err != nil {
		s.listProblem(w, r, p, err, first, studentsURL, true)
		return
	}
	if first.Total > maxPrint {
		s.render(w, r, http.StatusBadRequest, "error", &page{Title: "Too many to print", Admin: true, Crumbs: crumbs("Print", studentsCrumb),
			Data: errorPage{Code: http.StatusBadRequest, Heading: "Too many to print",
				Message: s.tr(r, "%d students match; the print view holds at most %d. Narrow the list with a search or a filter.", first.Total, maxPrint),
				Link:    backTo(p, 1).List(), LinkTxt: s.tr(r, "Back to the list")}})
		return
	}
	students := first.Students
	for n := 2; n <= first.Pages; n++ { // in the list's order
		o := p.options()
		o.Page, o.PerPage = n, store.MaxPerPage
		pg, err := s.store.ListStudents(r.Context(), o)
		if err != nil {
			s.dbError(w, r, err)
			return
		}
		students = append(students, pg.Students...)
	}
	// One group per class, classes in order, the list's order within.
	type keyed struct {
		key string
		st  store.Student
	}
	byClass := make([]keyed, len(students))
	for i, st := range students {
		byClass[i] = keyed{classOf(st), st}
	}
	slices.SortStableFunc(byClass, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	var groups []printGroup
	var written []map[string]int // each group's classes as written → students
	for i, k := range byClass {
		st := k.st
		if i == 0 || k.key != byClass[i-1].key {
			groups = append(groups, printGroup{})
			written = append(written, map[string]int{})
		}
		g := &groups[len(groups)-1]
		g.Students = append(g.Students, st)
		written[len(written)-1][st.Class]++
	}
	for i := range groups { // the spelling most have, as the sidebar's
		best, bestN := "", 0
		for name, n := range written[i] {
			if store.BetterSpelling(name, n, best, bestN) {
				best, bestN = name, n
			}
		}
		groups[i].Title = className(s.locale(r), best)
	}
	s.render(w, r, http.StatusOK, "admin_print", &page{
		Title:  "Print students",
		Admin:  true,
		Crumbs: crumbs("Print", studentsCrumb),
		Data:   printView{Groups: groups, Total: first.Total, Query: p.Query, Back: backTo(p, 1), Printed: s.locale(r).when(s.now())},
	})
}

// className is a class's heading ("" is students without a class).
func className(l *locale, c string) string {
	if c == "" {
		return l.T("No class")
	}
	return l.T("Class %s", c)
}
