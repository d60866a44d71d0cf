package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCSVImport imports 5,000 students through the browser at a new
// school. A file with bad rows shows a preview of its errors, with their
// line numbers, and imports nothing; a clean file is previewed, imports
// nothing until confirmed, and then imports every row.
func TestCSVImport(t *testing.T) {
	sys := system(t)
	b := newTab(t, sys, desktop)
	kisumu := school{"kisumu", sys.createTenant(t, "kisumu", "Kisumu Day School")}
	b.login(sys, kisumu)
	dir := t.TempDir()
	const n = 5000

	// Three bad rows among 5,000: a missing name (line 101), a registration
	// number with a space (line 2502), and a repeated one (line 4001
	// repeats line 2, the first student).
	rows := studentRows("KSM", n)
	rows[99][1] = ""
	rows[2500][0] = "KSM 2501"
	rows[3999][0] = rows[0][0]
	bad := writeCSV(t, dir, "students-with-errors.csv", rows)
	good := writeCSV(t, dir, "students.csv", studentRows("KSM", n))

	t.Run("a large upload says it is in progress", func(t *testing.T) {
		defer b.as(t)()
		b.open(kisumu.url(sys, "/admin/students/import/"), http.StatusOK, "import-form")
		b.see("Import students", "CSV file")
		b.step("choose the file", chromedp.SetUploadFiles(chromedp.CSS("#id_file"), []string{good}))
		// Keep the form from leaving the page, to see what the person
		// sees while a large file uploads.
		b.step("hold the form", chromedp.Evaluate[chromedp.Void](
			`document.getElementById("import-form").addEventListener("submit", e => e.preventDefault())`))
		b.step("submit", chromedp.Click(chromedp.CSS(`#import-form button[type=submit]`)))
		b.step("wait for the bar", chromedp.WaitVisible(chromedp.CSS(`#import-form .form-busy-bar`)))
		b.shot("upload-in-progress")
		if got := b.textOf("#import-form .form-busy-text"); !strings.HasPrefix(got, "Uploading and checking the file") {
			t.Errorf("while uploading, the form says %q", got)
		}
		if b.attr(`#import-form .form-busy-text`, "role") != "status" {
			t.Error("the progress text is not a status for screen readers")
		}
		disabled := value(b, "read the button", chromedp.Evaluate[bool](
			`document.querySelector("#import-form button[type=submit]").disabled`))
		if !disabled {
			t.Error("the upload button can be pressed twice")
		}
	})

	t.Run("bad rows: a preview of the errors, nothing imported", func(t *testing.T) {
		defer b.as(t)()
		b.open(kisumu.url(sys, "/admin/students/import/"), http.StatusOK, "import-form")
		b.step("choose the bad file", chromedp.SetUploadFiles(chromedp.CSS("#id_file"), []string{bad}))
		b.press(`#import-form button[type=submit]`, http.StatusUnprocessableEntity, "import-errors")
		errs := b.textOf("#import-row-errors")
		for _, want := range []string{
			"The file has errors. Nothing was imported.",
			"3 rows have errors; 4,997 rows are fine.",
			"101", "first_name", "2502", "registration_no", "4001", `"KSM/00001" repeats line 2`,
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("the error preview lacks %q:\n%s", want, errs)
			}
		}
		if n := b.count(`#import-row-errors tbody tr`); n != 3 {
			t.Errorf("%d error rows shown, want 3", n)
		}
		if b.count(`input[name=confirm]`) != 0 {
			t.Error("a file with errors can be confirmed")
		}
		if got := exportedRows(t, sys, "kisumu"); got != 0 {
			t.Fatalf("the database holds %d students after a rejected file, want 0", got)
		}
		b.open(kisumu.url(sys, "/"), http.StatusOK, "public-after-rejected-file")
		b.see("No students yet")
	})

	t.Run("clean file: preview, confirm, 5,000 students", func(t *testing.T) {
		defer b.as(t)()
		b.open(kisumu.url(sys, "/admin/students/import/"), http.StatusOK, "import-form-2")
		b.step("choose the clean file", chromedp.SetUploadFiles(chromedp.CSS("#id_file"), []string{good}))
		b.press(`#import-form button[type=submit]`, http.StatusOK, "import-preview")
		if got := b.textOf("#import-summary"); got != "The file has 5,000 valid student rows and no errors. Nothing has been imported yet." {
			t.Errorf("preview summary: %q", got)
		}
		b.see("KSM/00001", "First 10 rows of 5,000")
		if got := exportedRows(t, sys, "kisumu"); got != 0 {
			t.Fatalf("the database holds %d students before the import was confirmed, want 0", got)
		}
		if got := b.confirmImport("imported"); got != "Successfully imported 5,000 students." {
			t.Errorf("after importing: %q", got)
		}
		b.audit("import progress")
		b.open(kisumu.url(sys, "/admin/students/"), http.StatusOK, "imported-list")
		b.see("5,000 students, showing 1–50")
		if got := exportedRows(t, sys, "kisumu"); got != n {
			t.Errorf("the database holds %d students, want %d", got, n)
		}
		b.open(kisumu.url(sys, "/"), http.StatusOK, "public-after-import")
		b.see("1–50 of 5,000", "KSM/00001", rows[1][1])
		b.open(kisumu.url(sys, "/?page=100"), http.StatusOK, "public-last-page")
		b.see("4,951–5,000 of 5,000", "KSM/05000")
	})
}
