package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// TestXLSXImportAndExport: a class list as a school keeps it in Excel
// (a sheet named for the class, extra columns, a registration number
// typed as a number) imports through the browser: the preview names the
// sheet, the ignored column and the note about leading zeros, and writes
// nothing before the confirmation; the class, date of birth and guardian
// columns become the students' record. The list's "Export Excel" gives a
// workbook of this school's students only.
func TestXLSXImportAndExport(t *testing.T) {
	sys := system(t)
	garissa := school{"garissa", sys.createTenant(t, "garissa", "Garissa High")}
	b := newTab(t, sys, desktop)
	b.forbidden = []string{"NRB/", "ACC/", "Nairobi School"}
	b.login(sys, garissa)

	f := excelize.NewFile()
	defer f.Close()
	f.SetSheetName("Sheet1", "Form 2B")
	for i, row := range [][]any{
		{"Class", "Adm No", "First name", "Surname", "Date of birth", "Guardian", "Guardian phone", "House"},
		{"Form 2B", "GRS/001", "Chebet", "Kiprono", time.Date(2012, 3, 4, 0, 0, 0, 0, time.UTC), "Mary Kiprono", "+254 700 000001", "Simba"},
		{"Form 2B", 2, "Kiptoo", "Rotich", nil, nil, "+254 700 000002", "Chui"},
		{"Form 2B", "GRS/003", "Zoë", "Jepchirchir"},
	} {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Form 2B", cell, &row); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "form-2b.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}

	b.upload(garissa, sys, file, "add", http.StatusOK, "preview-xlsx")
	b.see("Read from the sheet “Form 2B” of an Excel workbook.", "Ignored column (not a student field): “House”.",
		"1 registration number is a plain number (the first: 2 on row 3)", "Chebet", "Zoë")
	if got := exportedRows(t, sys, "garissa"); got != 0 {
		t.Fatalf("%d students after the preview, want 0", got)
	}
	b.audit("xlsx import preview")
	if got := b.confirmImport("imported-xlsx"); got != "Successfully imported 3 students." {
		t.Errorf("after importing: %q", got)
	}
	// An imported student's history names its import (issue 27, 6),
	// whose link shows the import's entry on the history page.
	b.open(garissa.url(sys, "/admin/students/?q=GRS/003"), http.StatusOK, "imported-student")
	b.press(`#changelist tbody a`, http.StatusOK, "imported-student-change")
	b.press(`#history-link`, http.StatusOK, "imported-student-history")
	b.see("Created by import #1", "File form-2b.xlsx, mode add new students, 3 rows")
	b.dontSee("before history was kept")
	b.press(`#history td.op-ref a`, http.StatusOK, "imported-student-import")
	b.see("Only the entries of operation #1", "1 entry", "Imported", "3 students")
	b.open(garissa.url(sys, "/admin/students/"), http.StatusOK, "students-after-xlsx")

	link := b.attr("#export-xlsx", "href")
	if link != "/admin/students/export/?format=xlsx" {
		t.Errorf("Excel export link %q", link)
	}
	out, err := excelize.OpenReader(bytes.NewReader(b.exportFromPage(link)))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	rows, err := out.GetRows("Students")
	if err != nil {
		t.Fatal(err)
	}
	// The class list's extra columns are the students' record (the
	// sheet's date cell read as a date); "House" is no field.
	want := [][]string{
		{"registration_no", "first_name", "second_name", "class", "date_of_birth", "gender", "guardian_name", "guardian_phone",
			"guardian_email", "status", "status_date", "enrolled_on", "notes"},
		{"2", "Kiptoo", "Rotich", "Form 2B", "", "", "", "+254 700 000002", "", "enrolled"},
		{"GRS/001", "Chebet", "Kiprono", "Form 2B", "2012-03-04", "", "Mary Kiprono", "+254 700 000001", "", "enrolled"},
		{"GRS/003", "Zoë", "Jepchirchir", "Form 2B", "", "", "", "", "", "enrolled"}}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("the Excel export holds %q, want %q", rows, want)
	}
	// Nothing of it at another school.
	if out, err := sys.campus(nil, "manage", "accra", "students", "export"); err != nil || strings.Contains(out, "GRS/") {
		t.Fatalf("accra's export: %v\n%s", err, out)
	}
}
