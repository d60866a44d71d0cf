package app

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/campus-saas/campus/store"
)

// CSV import from the browser: upload → preview (row errors, a sample) →
// confirm. Nothing is written before the confirmation, and the confirmation
// carries the file itself (base64 in a hidden field), so no server-side
// state is kept between the two steps.

const (
	importPreviewRows = 10
	importMaxErrors   = 200
)

type importData struct {
	MaxSize   string
	Error     string // about the file as a whole
	Rows      int    // valid rows
	Sample    []store.StudentInput
	RowErrors []store.RowError // first importMaxErrors
	BadRows   int              // rows with errors, all of them
	MoreErrs  int
	Payload   string // base64 of the file, for the confirm form
}

func (s *server) renderImport(w http.ResponseWriter, r *http.Request, status int, d importData) {
	d.MaxSize = s.maxUploadSize()
	s.render(w, r, status, "admin_import", &page{
		Title:  "Import students",
		Admin:  true,
		Crumbs: crumbs("Import", studentsCrumb),
		Data:   d,
	})
}

func (s *server) handleStudentsImportForm(w http.ResponseWriter, r *http.Request) {
	s.renderImport(w, r, http.StatusOK, importData{})
}

// importFile returns the uploaded file, or the one carried by the
// confirmation form; otherwise a message for the person.
func (s *server) importFile(r *http.Request) ([]byte, string) {
	if p := r.PostForm.Get("payload"); p != "" {
		data, err := base64.StdEncoding.DecodeString(p)
		if err != nil || int64(len(data)) > s.maxUpload {
			return nil, "The confirmation was damaged; please upload the file again."
		}
		return data, ""
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		return nil, "Please choose a CSV file to upload."
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.maxUpload+1))
	if err != nil {
		return nil, "The file could not be read; please upload it again."
	}
	if int64(len(data)) > s.maxUpload {
		return nil, fmt.Sprintf("The file is larger than %s.", s.maxUploadSize())
	}
	return data, ""
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
	data, msg := s.importFile(r)
	if msg != "" {
		s.renderImport(w, r, http.StatusUnprocessableEntity, importData{Error: msg})
		return
	}
	rows, lines, rowErrs, err := store.ParseStudentsCSVLines(bytes.NewReader(data))
	if err != nil {
		s.renderImport(w, r, http.StatusUnprocessableEntity, importData{Error: "The file could not be read as CSV: " + err.Error()})
		return
	}
	d := importData{Rows: len(rows)}
	if len(rowErrs) == 0 && len(rows) > 0 && r.PostForm.Get("confirm") == "yes" {
		n, dbErrs, err := s.store.ImportStudents(r.Context(), rows, lines)
		if err != nil {
			s.serverError(w, r, fmt.Errorf("import %d students: %w", len(rows), err))
			return
		}
		if len(dbErrs) == 0 {
			s.record(r, store.StudentsImported(actor(r), n))
			s.refreshStudentsGauge(r.Context(), true)
			s.setFlash(w, r, flashImported, studentCount(n))
			http.Redirect(w, r, studentsURL, http.StatusSeeOther)
			return
		}
		rowErrs = dbErrs
	}
	d.Sample = rows[:min(len(rows), importPreviewRows)]
	d.BadRows = len(rowErrs)
	if len(rowErrs) > importMaxErrors {
		d.MoreErrs = len(rowErrs) - importMaxErrors
		rowErrs = rowErrs[:importMaxErrors]
	}
	d.RowErrors = rowErrs
	status := http.StatusOK
	switch {
	case len(rowErrs) > 0:
		status = http.StatusUnprocessableEntity
	case len(rows) == 0:
		d.Error = "The file has no student rows."
		status = http.StatusUnprocessableEntity
	default:
		d.Payload = base64.StdEncoding.EncodeToString(data)
	}
	s.renderImport(w, r, status, d)
}
