package app

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/campus-saas/campus/store"
)

// msgDuplicateRegNo is shown on the form when the registration number is
// taken.
const msgDuplicateRegNo = "A student with this registration number already exists."

const studentsURL = "/admin/students/"

func studentLabel(st store.Student) string {
	return st.FirstName + " " + st.SecondName + " (" + st.RegistrationNo + ")"
}

func changeURL(id int64) string { return fmt.Sprintf("/admin/students/%d/change/", id) }

func crumbs(current string, links ...crumb) []crumb {
	c := append([]crumb{{Label: "Home", URL: "/admin/"}}, links...)
	return append(c, crumb{Label: current})
}

var studentsCrumb = crumb{Label: "Students", URL: studentsURL}

// ---- list ----

type column struct {
	Key, Label string
	URL        string // link that sorts by this column (toggling direction)
	Sorted     string // "ascending", "descending" or ""
}

type studentList struct {
	Students     []store.Student
	Rows         template.HTML // adminRows (list_rows.go)
	Query        string
	Pager        pager
	Columns      []column
	Back         backLink // this page, for links to a student and the bulk delete form
	Export       string   // export link with the search applied
	ExportNB     string   // the same without a byte order mark
	ExportX      string   // the same as an .xlsx workbook
	Sizes        []sizeChoice
	Actions      []listAction // those the user may use (actions.go); none: no select boxes
	Across       bool         // offer "all N matching" (more match than the page shows)
	Print        string       // the print view of this list
	Filters      []filterGroup
	Filtered     bool // a filter is applied
	ClearFilters string
	Keep         []hiddenField // the list's state for the search form: sort is kept by Columns
	Capped       bool          // more match than "all N matching" may select
	MaxAll       int           // the most it may
}

// sizeChoice is a link to the same list with another page size.
type sizeChoice struct {
	Label, URL string
	Current    bool
}

// sizeChoices are the page sizes offered: "all" only while the list has
// at most maxShowAll rows.
func sizeChoices(p listParams, total int64) []sizeChoice {
	cur := p.PerPage
	if cur == 0 {
		cur = perPage
	}
	var out []sizeChoice
	for _, n := range perPageChoices {
		q := p
		q.PerPage = n
		out = append(out, sizeChoice{Label: strconv.Itoa(n), URL: q.link(studentsURL, 1), Current: cur == n})
	}
	if total <= int64(maxShowAll) {
		q := p
		q.PerPage = perPageAll
		out = append(out, sizeChoice{Label: "All", URL: q.link(studentsURL, 1), Current: cur == perPageAll})
	}
	return out
}

var listColumns = []column{
	{Key: "registration_no", Label: "Registration number"},
	{Key: "first_name", Label: "First name"},
	{Key: "second_name", Label: "Second name"},
}

func (s *server) handleStudentList(w http.ResponseWriter, r *http.Request) {
	p, err := parseListParams(r, true)
	var pg store.Page
	var facets store.Facets
	if err == nil {
		pg, facets, err = s.listWith(r.Context(), p, true)
	}
	if s.listProblem(w, r, p, err, pg, studentsURL, true) {
		return
	}
	if p.Query != "" {
		s.refreshStudentsGauge(r.Context(), false)
	}
	current := p.Sort
	if current == "" {
		current = "registration_no"
	}
	cols := make([]column, len(listColumns))
	for i, c := range listColumns {
		sp := p
		sp.Sort, sp.Page = c.Key, 1
		switch current {
		case c.Key:
			c.Sorted = "ascending"
			sp.Sort = "-" + c.Key
		case "-" + c.Key:
			c.Sorted = "descending"
		}
		c.URL = sp.link(studentsURL, 1)
		cols[i] = c
	}
	actions := actionsFor(stateOf(r).session.Perms)
	s.render(w, r, http.StatusOK, "admin_list", &page{
		Title:  "Students",
		Admin:  true,
		Crumbs: crumbs("Students"),
		Data: studentList{Students: pg.Students, Rows: adminRows(pg.Students, backTo(p, pg.Page).Suffix(), len(actions) > 0, s.tr(r, "Select")), Query: p.Query,
			Actions: actions, Print: printURL(p), Across: pg.Total > int64(len(pg.Students)), Capped: pg.Total > maxSelectAll, MaxAll: maxSelectAll, Pager: newPager(pg, p, studentsURL), Columns: cols, Back: backTo(p, pg.Page),
			Keep: keepFields(p), ClearFilters: listParams{Query: p.Query, Sort: p.Sort, PerPage: p.PerPage}.link(studentsURL, 1), Sizes: sizeChoices(p, pg.Total),
			Export: exportURL(p, true, ""), ExportNB: exportURL(p, false, ""), ExportX: exportURL(p, true, store.ExportXLSX),
			Filters: filterGroups(s.locale(r), p, facets), Filtered: p.options().Filtered()},
	})
}

// hiddenField is a hidden input of a form.
type hiddenField struct{ Name, Value string }

// keepFields are what a new search keeps of the list: its filters and page
// size.
func keepFields(p listParams) []hiddenField {
	v := p.values(1)
	var out []hiddenField
	for _, k := range []string{"class", "status", "year", "per_page"} {
		if x := v.Get(k); x != "" {
			out = append(out, hiddenField{k, x})
		}
	}
	return out
}

// printURL is the print view of the list p (all its pages).
func printURL(p listParams) string {
	p.PerPage = 0
	return p.link("/admin/students/print/", 1)
}

// ---- add and change ----

type studentForm struct {
	ID     int64 // 0 when adding
	Label  string
	Values store.StudentInput
	Errors store.FieldErrors
	Back   backLink // the list to return to
	// Unsaved: the save was refused because the disk is full (503); the
	// form is shown again with what was typed, and this request ID.
	Unsaved   string
	RequestID string
}

func formInput(r *http.Request) store.StudentInput {
	var st store.Student
	for _, f := range store.StudentFieldNames() {
		store.SetStudentField(&st, f, r.PostForm.Get(f))
	}
	return st.Input()
}

var fieldLabels = map[string]string{
	"registration_no": "Registration number",
	"first_name":      "First name",
	"second_name":     "Second name",
	"class":           "Class",
	"date_of_birth":   "Date of birth",
	"gender":          "Gender",
	"guardian_name":   "Guardian",
	"guardian_phone":  "Guardian's phone",
	"guardian_email":  "Guardian's e-mail",
	"status":          "Status",
	"status_date":     "Status since",
	"enrolled_on":     "Enrolment date",
	"notes":           "Notes",
}

// fieldLabelsOf are the labels of fields, in their order.
func fieldLabelsOf(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = fieldLabels[f]
	}
	return out
}

// formErrors turns the store's messages ("is required", "must be …") into
// sentences shown next to each field, in the page's language.
func formErrors(l *locale, fe store.FieldErrors) store.FieldErrors {
	out := store.FieldErrors{}
	for field, msg := range fe {
		switch {
		case msg == "is required":
			msg = l.T(msgRequired)
		case strings.HasPrefix(msg, "is ") || strings.HasPrefix(msg, "must "):
			label := fieldLabels[field]
			if label == "" {
				label = "This field"
			}
			msg = l.T("%s %s", l.T(label), l.storeMsg(msg))
			if !strings.HasSuffix(msg, ".") {
				msg += "."
			}
		default: // "“x” is not a date: …", "2030-01-01 is in the future"
			msg = l.storeMsg(msg)
		}
		out[field] = msg
	}
	return out
}

func (s *server) renderStudentForm(w http.ResponseWriter, r *http.Request, status int, f studentForm) {
	f.Errors = formErrors(s.locale(r), f.Errors)
	title := "Add student"
	if f.ID != 0 {
		title = "Change student"
	}
	s.render(w, r, status, "admin_form", &page{
		Title:  title,
		Admin:  true,
		Crumbs: crumbs(title, studentsCrumb),
		Data:   f,
	})
}

// saveError turns a store error into form errors; ok is false when the
// error is not about the input.
func saveError(err error) (store.FieldErrors, bool) {
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrDuplicateRegNo):
		return store.FieldErrors{"registration_no": msgDuplicateRegNo}, true
	case errors.As(err, &fe):
		return fe, true
	}
	return nil, false
}

// afterSave picks the next page from the button pressed, as Django does,
// keeping the list's search, sort and page.
func afterSave(r *http.Request, id int64) string {
	back := backFrom(r)
	switch {
	case r.PostForm.Has("_addanother"):
		return "/admin/students/add/" + back.Suffix()
	case r.PostForm.Has("_continue"):
		return changeURL(id) + back.Suffix()
	}
	return back.List()
}

// formNotSaved shows the student form again, with what was typed, as a
// 503 saying that the disk is full.
func (s *server) formNotSaved(w http.ResponseWriter, r *http.Request, f studentForm, err error) {
	s.cannotSave(r, err)
	f.Unsaved, f.RequestID = msgCannotSave, stateOf(r).id
	w.Header().Set("Retry-After", fullRetryAfter)
	s.renderStudentForm(w, r, http.StatusServiceUnavailable, f)
}

func (s *server) handleStudentAddForm(w http.ResponseWriter, r *http.Request) {
	s.renderStudentForm(w, r, http.StatusOK, studentForm{Back: backFrom(r)})
}

func (s *server) handleStudentAdd(w http.ResponseWriter, r *http.Request) {
	f := studentForm{Values: formInput(r), Back: backFrom(r)}
	in, fe := store.NormalizeStudent(f.Values)
	if len(fe) > 0 {
		f.Errors = fe
		s.renderStudentForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	st, err := s.store.CreateStudent(r.Context(), in)
	if err != nil {
		if fe, ok := saveError(err); ok {
			f.Errors = fe
			s.renderStudentForm(w, r, http.StatusUnprocessableEntity, f)
			return
		}
		if store.IsStorageFull(err) {
			s.formNotSaved(w, r, f, err)
			return
		}
		s.dbError(w, r, fmt.Errorf("create student: %w", err))
		return
	}
	s.record(r, store.StudentAdded(actor(r), st))
	s.refreshStudentsGauge(r.Context(), true)
	s.setFlash(w, r, flashAdded, studentLabel(st))
	http.Redirect(w, r, afterSave(r, st.ID), http.StatusSeeOther)
}

// student loads the student named in the URL; its error is answered.
func (s *server) student(w http.ResponseWriter, r *http.Request) (store.Student, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.adminNotFound(w, r, msgAdminNoStudent)
		return store.Student{}, false
	}
	st, err := s.store.Student(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.adminNotFound(w, r, msgAdminNoStudent)
		return st, false
	case err != nil:
		s.dbError(w, r, fmt.Errorf("load student %d: %w", id, err))
		return st, false
	}
	return st, true
}

func (s *server) handleStudentChangeForm(w http.ResponseWriter, r *http.Request) {
	st, ok := s.student(w, r)
	if !ok {
		return
	}
	s.renderStudentForm(w, r, http.StatusOK, studentForm{
		ID:     st.ID,
		Label:  studentLabel(st),
		Values: st.Input(),
		Back:   backFrom(r),
	})
}

func (s *server) handleStudentChange(w http.ResponseWriter, r *http.Request) {
	st, ok := s.student(w, r)
	if !ok {
		return
	}
	f := studentForm{ID: st.ID, Label: studentLabel(st), Values: formInput(r), Back: backFrom(r)}
	in, fe := store.NormalizeStudent(f.Values)
	if len(fe) > 0 {
		f.Errors = fe
		s.renderStudentForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	before := st // for the history
	st, err := s.store.UpdateStudent(r.Context(), st.ID, in)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.adminNotFound(w, r, msgAdminNoStudent)
		return
	case err != nil:
		if fe, ok := saveError(err); ok {
			f.Errors = fe
			s.renderStudentForm(w, r, http.StatusUnprocessableEntity, f)
			return
		}
		if store.IsStorageFull(err) {
			s.formNotSaved(w, r, f, err)
			return
		}
		s.dbError(w, r, fmt.Errorf("update student %d: %w", f.ID, err))
		return
	}
	s.record(r, store.StudentChanged(actor(r), before, st))
	s.setFlash(w, r, flashChanged, studentLabel(st))
	http.Redirect(w, r, afterSave(r, st.ID), http.StatusSeeOther)
}

// ---- delete ----

func (s *server) handleStudentDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	st, ok := s.student(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "admin_delete", &page{
		Title:  "Are you sure?",
		Admin:  true,
		Crumbs: crumbs("Delete", studentsCrumb, crumb{Label: studentLabel(st), URL: changeURL(st.ID)}),
		Data: struct {
			Student store.Student
			Back    backLink
		}{st, backFrom(r)},
	})
}

func (s *server) handleStudentDelete(w http.ResponseWriter, r *http.Request) {
	st, ok := s.student(w, r)
	if !ok {
		return
	}
	err := s.store.DeleteStudent(r.Context(), st.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.adminNotFound(w, r, msgAdminNoStudent)
		return
	case err != nil:
		s.dbError(w, r, fmt.Errorf("delete student %d: %w", st.ID, err))
		return
	}
	s.record(r, store.StudentDeleted(actor(r), st, false))
	s.refreshStudentsGauge(r.Context(), true)
	s.setFlash(w, r, flashDeleted, studentLabel(st))
	http.Redirect(w, r, backFrom(r).List(), http.StatusSeeOther)
}

// ---- export ----

// exportURL is the export link of a list: the list's search and filters
// applied; bom false leaves out the byte order mark; format "" is CSV.
func exportURL(p listParams, bom bool, format string) string {
	v := listParams{Query: p.Query, Class: p.Class, Status: p.Status, Year: p.Year}.values(1)
	if !bom {
		v.Set("bom", "0")
	}
	if format != "" {
		v.Set("format", format)
	}
	if enc := v.Encode(); enc != "" {
		return exportPath + "?" + enc
	}
	return exportPath
}

const exportPath = "/admin/students/export/"

// handleStudentsExport writes the students matching ?q= (all without it)
// as CSV, with a UTF-8 byte order mark unless ?bom=0, so that Excel reads
// Zoë and 伊藤 right, or with ?format=xlsx as an Excel workbook.
func (s *server) handleStudentsExport(w http.ResponseWriter, r *http.Request) {
	p, err := parseListParams(r, true)
	if err != nil {
		s.listProblem(w, r, p, err, store.Page{}, studentsURL, true)
		return
	}
	s.sendExport(w, r, store.ExportOptions{Query: p.Query, Filters: p.options(), NoBOM: r.URL.Query().Get("bom") == "0"}, "students")
}

// sendExport answers with the export o as CSV or, with ?format=xlsx, as an
// .xlsx workbook, named school-what-date.
func (s *server) sendExport(w http.ResponseWriter, r *http.Request, o store.ExportOptions, what string) {
	ext, ctype := "csv", "text/csv; charset=utf-8"
	if r.URL.Query().Get("format") == store.ExportXLSX {
		o.Format, ext, ctype = store.ExportXLSX, "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	var buf bytes.Buffer
	if err := s.store.ExportStudents(r.Context(), &buf, o); err != nil {
		s.dbError(w, r, fmt.Errorf("export %s: %w", what, err))
		return
	}
	name := fmt.Sprintf("%s-%s-%s.%s", s.tenant.Name, what, s.now().In(s.locale(r).zone).Format("2006-01-02"), ext)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}
