package app

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/campus-saas/campus/store"
)

// The admin list's actions (Django's actions menu and its "select all N
// matching" bar). Each action is its own route with its own permission
// (adminRoutes), so the one guard refuses it; the list shows its select
// boxes and the buttons of the actions a user may use, and no select box
// to a user who may use none. The selection is either the ticked rows
// (ids) or, with select_across=1, every student the list shows with its
// search (and filters), named by the back field: read again when the
// action runs, and a confirmation that no longer states the right number
// is shown again with the new one.

const (
	// maxSelected bounds the ticked rows of one action (a page of "all").
	maxSelected = maxShowAll
	// maxSelectAll bounds "select all N matching": one operation with one
	// history entry per student.
	maxSelectAll = 10_000
	// confirmShown is how many names a confirmation page lists.
	confirmShown = 50
)

// listAction is an action of the list's menu.
type listAction struct {
	Name, Label, URL string
	Need             store.Permission
	Danger           bool
}

// listActions, in the menu's order (the first is the form's own action).
var listActions = []listAction{
	{Name: "delete", Label: "Delete selected students", URL: "/admin/students/delete-selected/", Need: store.PermDelete, Danger: true},
	{Name: "status", Label: "Change status", URL: "/admin/students/change-status/", Need: store.PermChange},
	{Name: "class", Label: "Change class", URL: "/admin/students/change-class/", Need: store.PermChange},
	{Name: "export_csv", Label: "Export selected (CSV)", URL: "/admin/students/export-selected/", Need: store.PermExport},
	{Name: "export_xlsx", Label: "Export selected (Excel)", URL: "/admin/students/export-selected/?format=xlsx", Need: store.PermExport},
}

// actionsFor are the actions perms allow (none: no select boxes).
func actionsFor(perms store.Perms) []listAction {
	var out []listAction
	for _, a := range listActions {
		if perms.Has(a.Need) {
			out = append(out, a)
		}
	}
	return out
}

// selection is what an action applies to.
type selection struct {
	Across bool     // every student the list (Back) shows
	Back   backLink // the list: its search, sort, filters, page
	IDs    []int64  // the students, ascending for Across
	Total  int64    // how many
	Expect string   // the count the confirmation stated ("" on the first post)
	list   listParams
	l      *locale // the page's language (Describe)
}

// selected reads the selection of an action's form. ok is false when it
// has answered (nothing selected: back to the list with a warning; too
// many: 400 saying so).
func (s *server) selected(w http.ResponseWriter, r *http.Request) (sel selection, ok bool) {
	sel = selection{Back: backFrom(r), Across: r.PostForm.Get("select_across") == "1", Expect: r.PostForm.Get("expect"), l: s.locale(r)}
	if sel.Across {
		p := sel.Back.params()
		sel.list = p
		ids, total, err := s.store.MatchingIDs(r.Context(), p.options(), maxSelectAll)
		switch {
		case errors.Is(err, store.ErrTooManySelected):
			s.render(w, r, http.StatusBadRequest, "error", &page{Title: "Too many students selected", Admin: true, Crumbs: crumbs("Actions", studentsCrumb),
				Data: errorPage{Code: http.StatusBadRequest, Heading: "Too many students selected",
					Message: s.tr(r, "%d students match; an action applies to at most %d at once. Narrow the list with a search or a filter. Nothing has been changed.", total, maxSelectAll),
					Link:    sel.Back.List(), LinkTxt: s.tr(r, "Back to the list")}})
			return sel, false
		case err != nil:
			s.dbError(w, r, err)
			return sel, false
		}
		sel.IDs, sel.Total = ids, total
	} else {
		seen := map[int64]bool{}
		for _, v := range r.PostForm["ids"] {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 || seen[id] {
				continue
			}
			seen[id] = true
			sel.IDs = append(sel.IDs, id)
		}
		if len(sel.IDs) > maxSelected {
			s.render(w, r, http.StatusBadRequest, "error", &page{Title: "Too many students selected", Admin: true, Crumbs: crumbs("Actions", studentsCrumb),
				Data: errorPage{Code: http.StatusBadRequest, Heading: "Too many students selected",
					Message: s.tr(r, "%d ticked; at most %d at once. Nothing has been changed.", len(sel.IDs), maxSelected),
					Link:    sel.Back.List(), LinkTxt: s.tr(r, "Back to the list")}})
			return sel, false
		}
		sel.Total = int64(len(sel.IDs))
	}
	if sel.Total == 0 {
		s.setFlash(w, r, flashNoneChosen, "")
		http.Redirect(w, r, sel.Back.List(), http.StatusSeeOther)
		return sel, false
	}
	return sel, true
}

// confirmed reports whether the form is the confirmation of this very
// selection (a select-all whose count changed since is not).
func (sel selection) confirmed(r *http.Request) bool {
	return r.PostForm.Get("confirm") == "yes" && (!sel.Across || sel.Expect == strconv.FormatInt(sel.Total, 10))
}

// Describe says what is selected, for the confirmation page, in the
// page's language.
func (sel selection) Describe() string {
	l := sel.l
	if l == nil {
		l = defaultLocale()
	}
	switch {
	case !sel.Across:
		return l.T("the selected %d students", sel.Total)
	case sel.list.Query != "":
		return l.T("all %d students matching “%s”", sel.Total, sel.list.Query)
	}
	return l.T("all %d students", sel.Total)
}

// Changed reports that the confirmation stated another number.
func (sel selection) Changed() bool {
	return sel.Across && sel.Expect != "" && sel.Expect != strconv.FormatInt(sel.Total, 10)
}

// confirmPage is the data of an action's confirmation.
type confirmPage struct {
	Sel      selection
	Action   string // the form's URL
	Students []store.Student
	More     int64 // selected but not listed
}

func (s *server) confirmAction(w http.ResponseWriter, r *http.Request, sel selection, action, tmpl, title string) {
	s.confirmWith(w, r, sel, http.StatusOK, action, tmpl, title, func(c confirmPage) any { return c })
}

// confirmWith renders an action's confirmation page tmpl with data(the
// selection as shown).
func (s *server) confirmWith(w http.ResponseWriter, r *http.Request, sel selection, status int, action, tmpl, title string, data func(confirmPage) any) {
	load := sel.IDs // the ticked ones: all, to keep those that still exist
	if sel.Across && len(load) > confirmShown {
		load = load[:confirmShown]
	}
	students, err := s.store.StudentsByID(r.Context(), load)
	if err != nil {
		s.dbError(w, r, fmt.Errorf("load selected students: %w", err))
		return
	}
	if len(students) == 0 {
		s.setFlash(w, r, flashNoneChosen, "")
		http.Redirect(w, r, sel.Back.List(), http.StatusSeeOther)
		return
	}
	if !sel.Across {
		sel.IDs = sel.IDs[:0]
		for _, st := range students {
			sel.IDs = append(sel.IDs, st.ID)
		}
		sel.Total = int64(len(students))
	}
	students = students[:min(len(students), confirmShown)]
	s.render(w, r, status, tmpl, &page{
		Title:  title,
		Admin:  true,
		Crumbs: crumbs(title, studentsCrumb),
		Data:   data(confirmPage{Sel: sel, Action: action, Students: students, More: sel.Total - int64(len(students))}),
	})
}

// handleStudentsDeleteSelected is the delete action: the first POST (from
// the list) shows a confirmation stating how many, the second (with
// confirm=yes) deletes them as one operation (all or nothing).
func (s *server) handleStudentsDeleteSelected(w http.ResponseWriter, r *http.Request) {
	sel, ok := s.selected(w, r)
	if !ok {
		return
	}
	if !sel.confirmed(r) {
		s.confirmAction(w, r, sel, "/admin/students/delete-selected/", "admin_delete_selected", "Delete multiple students")
		return
	}
	n, err := s.store.DeleteStudents(r.Context(), sel.IDs, actor(r))
	if err != nil {
		s.dbError(w, r, fmt.Errorf("delete %d students: %w", len(sel.IDs), err))
		return
	}
	s.refreshStudentsGauge(r.Context(), true)
	s.setFlash(w, r, flashBulkDelete, strconv.FormatInt(n, 10))
	back := sel.Back
	if sel.Across { // the list's pages are gone: its first page
		p := sel.list
		back = backTo(p, 1)
	}
	http.Redirect(w, r, back.List(), http.StatusSeeOther)
}

// handleStudentsExportSelected is the export action: the selected
// students as CSV (with a byte order mark) or, with ?format=xlsx, as an
// Excel workbook; no confirmation (nothing changes).
func (s *server) handleStudentsExportSelected(w http.ResponseWriter, r *http.Request) {
	sel, ok := s.selected(w, r)
	if !ok {
		return
	}
	s.sendExport(w, r, store.ExportOptions{IDs: sel.IDs}, "students-selected")
}

// changeForm is the page of a bulk change: the value to set and the
// confirmation stating how many.
type changeForm struct {
	confirmPage
	Field    string // "status" or "class"
	Value    string
	Error    string
	Statuses []string
	Classes  []string // the school's classes (a datalist)
}

func (s *server) handleStudentsChangeStatus(w http.ResponseWriter, r *http.Request) {
	s.bulkChange(w, r, "status")
}

func (s *server) handleStudentsChangeClass(w http.ResponseWriter, r *http.Request) {
	s.bulkChange(w, r, "class")
}

// bulkChange is the change-status and change-class actions: the first POST
// (from the list) asks for the value and states how many students; the
// second (confirm=yes) changes them as one operation (all or nothing).
func (s *server) bulkChange(w http.ResponseWriter, r *http.Request, field string) {
	sel, ok := s.selected(w, r)
	if !ok {
		return
	}
	value, has := r.PostForm.Get(field), r.PostForm.Has(field)
	ch := store.StudentsChange{}
	if field == "status" {
		ch.SetStatus, ch.Status = true, value
	} else {
		ch.SetClass, ch.Class = true, strings.TrimSpace(value)
	}
	errMsg := ""
	if sel.confirmed(r) && has {
		n, err := s.store.ChangeStudents(r.Context(), sel.IDs, ch, actor(r))
		var fe store.FieldErrors
		switch {
		case errors.As(err, &fe):
			errMsg = formErrors(s.locale(r), fe)[field]
			if errMsg == "" {
				for _, m := range formErrors(s.locale(r), fe) {
					errMsg = m
				}
			}
		case err != nil:
			s.dbError(w, r, fmt.Errorf("change %s of %d students: %w", field, len(sel.IDs), err))
			return
		default:
			kind := flashBulkStatus
			if field == "class" {
				kind = flashBulkClass
			}
			s.setFlash(w, r, kind, strconv.FormatInt(int64(n), 10))
			http.Redirect(w, r, sel.Back.List(), http.StatusSeeOther)
			return
		}
	}
	f := changeForm{Field: field, Value: value, Error: errMsg, Statuses: store.Statuses}
	if field == "class" {
		facets, err := s.store.StudentFacets(r.Context())
		if err != nil {
			s.dbError(w, r, err)
			return
		}
		for _, c := range facets.Classes {
			if c.Value != "" {
				f.Classes = append(f.Classes, c.Value)
			}
		}
	}
	title := "Change status"
	if field == "class" {
		title = "Change class"
	}
	status := http.StatusOK
	if errMsg != "" {
		status = http.StatusUnprocessableEntity
	}
	s.confirmWith(w, r, sel, status, "/admin/students/change-"+field+"/", "admin_change_selected", title, func(c confirmPage) any {
		f.confirmPage = c
		return f
	})
}
