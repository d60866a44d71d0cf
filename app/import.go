package app

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/campus-saas/campus/store"
)

// Import from the browser (a CSV or an .xlsx workbook): upload → preview →
// confirm. The preview is
// the store's ImportPlan: every check the confirmation makes (the file's
// rows, duplicates within it and against the database), so the two never
// disagree. Nothing is written before the confirmation, and the
// confirmation carries the file itself (base64 in a hidden field) and the
// plan's fingerprint, so no server-side state is kept between the two
// steps, and a confirmation applies exactly what was previewed: if the
// students changed in between, a fresh preview is shown instead.

const (
	importPreviewRows = 10
	importMaxErrors   = 200
)

type importData struct {
	MaxSize   string
	Error     string // about the file as a whole
	Notice    string // the data changed since the preview
	Mode      store.ImportMode
	Update    bool // Mode == store.ImportUpdate
	Encoding  string
	Delimiter string
	SaveHelp  string // how to save as CSV UTF-8, when the file was not UTF-8
	XLSX      bool   // the file was a workbook
	Sheet     string // the sheet asked for (the form) or read (the preview)
	Ignored   []string
	Notes     []string
	LineWord  string // "Line" (CSV) or "Row" (a sheet's rows)
	FileName  string // the uploaded file's name, for the confirm form

	Rows      int // rows without errors
	New       int
	Changed   int
	Unchanged int
	Sample    []store.StudentInput // first new rows
	Changes   []importChangeView   // first changed rows
	RowErrors []store.RowError     // first importMaxErrors
	BadRows   int                  // rows with errors, all of them
	MoreErrs  int
	Payload   string // base64 of the file, for the confirm form
	Plan      string // the plan's fingerprint, for the confirm form
}

type importChangeView struct {
	Line     int
	RegNo    string
	Fields   []importFieldChange
	StudentU string // change page of the student
}

type importFieldChange struct{ Label, Old, New string }

func (s *server) renderImport(w http.ResponseWriter, r *http.Request, status int, d importData) {
	d.MaxSize = s.maxUploadSize()
	d.Update = d.Mode == store.ImportUpdate
	s.render(w, r, status, "admin_import", &page{
		Title:  "Import students",
		Admin:  true,
		Crumbs: crumbs("Import", studentsCrumb),
		Data:   d,
	})
}

func (s *server) handleStudentsImportForm(w http.ResponseWriter, r *http.Request) {
	mode := store.ImportAdd
	if r.URL.Query().Get("mode") == string(store.ImportUpdate) {
		mode = store.ImportUpdate
	}
	s.renderImport(w, r, http.StatusOK, importData{Mode: mode})
}

// importFile returns the uploaded file and its name, or the ones carried
// by the confirmation form; otherwise a message for the person.
func (s *server) importFile(r *http.Request) ([]byte, string, string) {
	if p := r.PostForm.Get("payload"); p != "" {
		data, err := base64.StdEncoding.DecodeString(p)
		if err != nil || int64(len(data)) > s.maxUpload {
			return nil, "", "The confirmation was damaged; please upload the file again."
		}
		return data, r.PostForm.Get("name"), ""
	}
	f, h, err := r.FormFile("file")
	if err != nil {
		return nil, "", "Please choose a CSV or Excel (.xlsx) file to upload."
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.maxUpload+1))
	if err != nil {
		return nil, "", "The file could not be read; please upload it again."
	}
	if int64(len(data)) > s.maxUpload {
		return nil, "", s.tr(r, "The file is larger than %s.", s.maxUploadSize())
	}
	return data, h.Filename, ""
}

// maxUploadSize is the upload limit for people: "10 MB", "512 KB".
func (s *server) maxUploadSize() string {
	n := float64(s.maxUpload)
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(math.Round(n/(1<<20)*10)/10, 'f', -1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatFloat(n/(1<<10), 'f', 0, 64) + " KB"
	}
	return strconv.FormatInt(s.maxUpload, 10) + " bytes"
}

func (s *server) handleStudentsImport(w http.ResponseWriter, r *http.Request) {
	mode := store.ImportAdd
	if r.PostForm.Get("mode") == string(store.ImportUpdate) {
		mode = store.ImportUpdate
	}
	user := "" // behind requireLogin a session is always there
	if st := stateOf(r); st.session != nil {
		user = st.session.UserID
	}
	// A confirmation: once per plan (importjob.go). A second one of the
	// same plan is sent to the first one's progress page.
	var job *importJob
	if fp := r.PostForm.Get("plan"); r.PostForm.Get("confirm") == "yes" && fp != "" {
		var op int64
		if job, op = s.jobs.confirmOnce(r.Context(), fp, mode); job == nil {
			if op != 0 {
				http.Redirect(w, r, importProgressURL(op), http.StatusSeeOther)
			}
			return
		}
		defer func() {
			if job != nil { // not handed to startImport: nothing started
				s.jobs.startedAs(job, nil)
			}
		}()
	}
	switch s.imports.enter(user) {
	case gateUserBusy:
		w.Header().Set("Retry-After", "5")
		s.renderImport(w, r, http.StatusTooManyRequests, importData{Mode: mode,
			Error: "Your previous import is still being checked or imported. Wait for it to finish, then upload the file again."})
		return
	case gateAppBusy:
		w.Header().Set("Retry-After", "5")
		s.renderImport(w, r, http.StatusServiceUnavailable, importData{Mode: mode,
			Error: "Other imports are being checked right now. Please upload the file again in a moment."})
		return
	}
	rows, running := 0, false
	defer func() {
		if !running { // a running import leaves when it ends (startImport)
			s.imports.leave(user, rows)
		}
	}()
	sheet := strings.TrimSpace(r.PostForm.Get("sheet"))
	data, name, msg := s.importFile(r)
	if msg != "" {
		s.renderImport(w, r, http.StatusUnprocessableEntity, importData{Mode: mode, Sheet: sheet, Error: msg})
		return
	}
	parsed, err := store.ParseStudents(bytes.NewReader(data), store.ParseOptions{Name: name, Sheet: sheet})
	rows = len(parsed.Rows)
	if err != nil {
		s.renderImport(w, r, http.StatusUnprocessableEntity, importData{Mode: mode, Sheet: sheet, Error: s.locale(r).T("The file could not be read: %s", s.locale(r).storeMsg(store.PageMessage(err)))})
		return
	}
	plan, err := s.store.PlanImport(r.Context(), parsed.Rows, parsed.Lines, parsed.Errors, mode)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("plan import of %d rows: %w", len(parsed.Rows), err))
		return
	}
	plan.File = name[strings.LastIndexAny(name, `/\`)+1:] // for the history (some browsers send a path)
	d := importData{Mode: mode}
	if r.PostForm.Get("confirm") == "yes" && len(plan.Errors) == 0 && plan.Valid() > 0 {
		if r.PostForm.Get("plan") != plan.Fingerprint() {
			d.Notice = "The students changed since the preview (someone edited, added or deleted some). " +
				"Nothing was imported. Check this new preview and confirm again."
		} else {
			j := job  // claimed above: the form's plan is this one's
			job = nil // startImport settles it
			var err error
			if running, err = s.startImport(w, r, j, plan, user, rows); !running {
				s.serverError(w, r, fmt.Errorf("start the import of %d rows: %w", plan.Valid(), err))
			}
			return
		}
	}
	fillImportPreview(&d, parsed, plan)
	d.RowErrors = rowErrorsIn(s.locale(r), d.RowErrors)
	notes := make([]string, len(d.Notes))
	for i, n := range d.Notes {
		notes[i] = s.locale(r).storeMsg(n)
	}
	d.Notes = notes
	status := http.StatusOK
	switch {
	case len(plan.Errors) > 0:
		status = http.StatusUnprocessableEntity
	case plan.Valid() == 0:
		d.Error = "The file has no student rows."
		status = http.StatusUnprocessableEntity
	case len(plan.New)+len(plan.Changed) == 0:
		d.Error = "Every row matches a student as they are now: there is nothing to import."
	default:
		d.Payload = base64.StdEncoding.EncodeToString(data)
		d.Plan = plan.Fingerprint()
		d.FileName = name
	}
	s.renderImport(w, r, status, d)
}

// importedText is the message after an import: "Successfully imported
// 2 students.", or in update mode "Successfully imported 3 students (1
// new, 2 updated)."
func importedText(l *locale, mode store.ImportMode, res store.ImportResult) string {
	n := res.Added + res.Updated
	if mode != store.ImportUpdate {
		return l.T("Successfully imported %d students.", n)
	}
	return l.T("Successfully imported %d students (%d new, %d updated).", n, res.Added, res.Updated)
}

func fillImportPreview(d *importData, parsed store.ParsedCSV, plan store.ImportPlan) {
	d.LineWord = "Line"
	if d.XLSX = parsed.Format == store.FormatXLSX; d.XLSX {
		d.Sheet, d.LineWord = parsed.Sheet, "Row"
	} else {
		d.Encoding = parsed.Encoding
		d.Delimiter = store.DelimiterName(parsed.Delimiter)
	}
	if parsed.Encoding == store.EncodingWindows1252 {
		d.SaveHelp = store.MsgSaveAsUTF8
	}
	d.Ignored, d.Notes = parsed.Ignored, parsed.Notes
	d.Rows, d.New, d.Changed, d.Unchanged = plan.Valid(), len(plan.New), len(plan.Changed), plan.Unchanged
	for _, row := range plan.New[:min(len(plan.New), importPreviewRows)] {
		d.Sample = append(d.Sample, row.Input)
	}
	for _, c := range plan.Changed[:min(len(plan.Changed), importPreviewRows)] {
		v := importChangeView{Line: c.Line, RegNo: c.Current.RegistrationNo, StudentU: changeURL(c.Current.ID)}
		after := c.After()
		for _, f := range c.ChangedFields() {
			v.Fields = append(v.Fields, importFieldChange{Label: fieldLabels[f],
				Old: store.StudentField(c.Current, f), New: store.StudentField(after, f)})
		}
		d.Changes = append(d.Changes, v)
	}
	rowErrs := plan.Errors
	d.BadRows = len(rowErrs)
	if len(rowErrs) > importMaxErrors {
		d.MoreErrs = len(rowErrs) - importMaxErrors
		rowErrs = rowErrs[:importMaxErrors]
	}
	d.RowErrors = rowErrs
}
