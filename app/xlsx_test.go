package app

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/campus-saas/campus/store"
)

// uploadFile uploads content as a file called name to the import form.
func uploadFile(t *testing.T, b *browser, fields map[string]string, name string, content []byte) response {
	t.Helper()
	p := b.get("/admin/students/import/")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf_token", csrfOf(t, p.body))
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	req, err := http.NewRequest("POST", b.url("/admin/students/import/"), &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// workbook is an .xlsx whose sheet (renamed from Sheet1) holds rows.
func workbook(t *testing.T, sheet string, rows [][]any) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow(sheet, cell, &row); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A class list as schools keep it (extra columns, a number for a
// registration number) imports from an .xlsx upload: the preview lists
// the ignored columns and the note about leading zeros and writes
// nothing; the confirmation imports exactly the previewed rows.
func TestImportXLSX(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	class := workbook(t, "Form 2", [][]any{
		{"Class", "Adm No", "First name", "Surname", "Date of birth", "House", "Locker"},
		{"2B", "X-1", "Zoë", "Müller", "2012-03-04", "Simba"},
		{"2B", 123, "Kofi", "Mensah", nil},
	})

	r := uploadFile(t, b, map[string]string{"mode": "add"}, "Form 2.xlsx", class)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Read from the sheet “Form 2” of an Excel workbook", "Ignored columns (not a student field)",
		"“House”, “Locker”", "1 registration number is a plain number", "Zoë", "Import 2 students")
	if e.count() != 0 {
		t.Fatal("the preview wrote")
	}
	c := confirmImport(t, b, r)
	wantCode(t, c, http.StatusSeeOther)
	wantBody(t, awaitImport(t, b, c), "Successfully imported 2 students")
	got := exported(t, e)
	want := [][]string{{"123", "Kofi", "Mensah"}, {"X-1", "Zoë", "Müller"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after the import: %q, want %q", got, want)
	}

	// A bad row is named by its sheet row; nothing is imported.
	r = uploadFile(t, b, map[string]string{"mode": "add"}, "Form 3.xlsx", workbook(t, "Sheet1", [][]any{
		{"registration_no", "first_name", "second_name"}, {}, {"Y-1", "Ama", ""}, {"Y-2", "Kwame", "Nkrumah"}}))
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, `<th scope="col">Row</th>`, "<td>3</td><td>second_name: ")
	// A named sheet that is not there, a CSV called .xlsx, an old .xls.
	r = uploadFile(t, b, map[string]string{"mode": "add", "sheet": "Form 3"}, "Form 2.xlsx", class)
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "no sheet &#34;Form 3&#34;; its sheets are &#34;Form 2&#34;", `value="Form 3"`)
	r = uploadFile(t, b, map[string]string{"mode": "add"}, "list.xlsx", []byte("registration_no,first_name,second_name\nZ-1,A,B\n"))
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "list.xlsx is not an Excel workbook (.xlsx) inside")
	if e.count() != 2 {
		t.Fatalf("%d students after refused uploads, want 2", e.count())
	}
}

// exported is the tenant's students as its .xlsx export holds them.
func exported(t *testing.T, e *env) [][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := e.store.ExportStudents(context.Background(), &buf, store.ExportOptions{Format: store.ExportXLSX}); err != nil {
		t.Fatal(err)
	}
	p, err := store.ParseStudents(&buf, store.ParseOptions{})
	if err != nil || len(p.Errors) > 0 {
		t.Fatalf("read the export back: %v %v", err, p.Errors)
	}
	var rows [][]string
	for _, s := range p.Rows {
		rows = append(rows, []string{s.RegistrationNo, s.FirstName, s.SecondName})
	}
	return rows
}

// The .xlsx export: a workbook of this tenant's students only (nothing of
// another school anywhere in the file), every cell text and none a
// formula; imported into another school it gives the same students.
func TestExportXLSXRoundTrip(t *testing.T) {
	a := newEnv(t, "acme", envOptions{})
	bEnv := newEnv(t, "beta", envOptions{})
	bEnv.addStudent("B-1", "Beatrice", "Otherschool")
	a.addStudent("X-1", `=HYPERLINK("http://evil","x")`, "Zoë")
	a.addStudent("X-2", "+Kofi", "@Mensah")
	a.addStudent("007", "'=quoted", "伊藤")
	a.addStudent("X-3", "Ama", "-Owusu")

	ba := a.browser()
	ba.login()
	r := ba.get("/admin/students/export/?format=xlsx")
	wantCode(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasSuffix(cd, `.xlsx"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	wantBody(t, ba.get("/admin/students/"), `href="/admin/students/export/?format=xlsx"`)

	// Cross-tenant: no part of acme's workbook mentions beta's student.
	zr, err := zip.NewReader(strings.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		part, _ := io.ReadAll(rc)
		rc.Close()
		for _, s := range []string{"B-1", "Beatrice", "Otherschool", "beta"} {
			if bytes.Contains(part, []byte(s)) {
				t.Errorf("acme's export %s holds %q of tenant beta", zf.Name, s)
			}
		}
	}

	// Every cell a string, no formula, the columns formatted as text.
	f, err := excelize.OpenReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := f.GetRows("Students")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{store.StudentFieldNames(), {"007", "''=quoted", "伊藤"},
		{"X-1", `=HYPERLINK("http://evil","x")`, "Zoë"}, {"X-2", "+Kofi", "@Mensah"}, {"X-3", "Ama", "-Owusu"}}
	for i := range want[1:] { // the record's other fields: empty, enrolled (trailing empty cells are not rows' cells)
		want[i+1] = append(want[i+1], "", "", "", "", "", "", store.StatusEnrolled)
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Fatalf("export rows %q, want %q", rows, want)
	}
	for i := range want {
		for j := range want[i] {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if fm, _ := f.GetCellFormula("Students", cell); fm != "" {
				t.Errorf("%s is a formula %q", cell, fm)
			}
			if ct, _ := f.GetCellType("Students", cell); ct != excelize.CellTypeInlineString {
				t.Errorf("%s has type %v, want an inline string", cell, ct)
			}
			st, _ := f.GetCellStyle("Students", cell)
			if s, err := f.GetStyle(st); err != nil || s.NumFmt != 49 {
				t.Errorf("%s style %+v (%v), want the text format 49", cell, s, err)
			}
		}
	}

	// Imported into another school (update mode: beta keeps B-1): the
	// same students.
	c := bEnv.browser()
	c.login()
	p := uploadFile(t, c, map[string]string{"mode": "update"}, "acme-students.xlsx", []byte(r.body))
	wantCode(t, p, http.StatusOK)
	wantBody(t, p, "4 new")
	wantBody(t, awaitImport(t, c, confirmImport(t, c, p)), "Successfully imported 4 students")
	got := exported(t, bEnv)
	wantRows := [][]string{{"007", "'=quoted", "伊藤"}, {"B-1", "Beatrice", "Otherschool"},
		{"X-1", `=HYPERLINK("http://evil","x")`, "Zoë"}, {"X-2", "+Kofi", "@Mensah"}, {"X-3", "Ama", "-Owusu"}}
	if !slices.EqualFunc(got, wantRows, slices.Equal) {
		t.Fatalf("beta after importing acme's export: %q, want %q", got, wantRows)
	}
	if a.count() != 4 {
		t.Errorf("acme has %d students, want 4", a.count())
	}
}

// TestImportNotesInFrench: a French school's import preview gives its
// notes (built with values) and a duplicate's row error in French.
func TestImportNotesInFrench(t *testing.T) {
	e := newEnv(t, "lille", envOptions{})
	e.addStudent("X-1", "Zoë", "Müller")
	b := frenchNairobi(t, e, false)
	r := uploadFile(t, b, map[string]string{"mode": "add"}, "Form 2.xlsx", workbook(t, "Form 2", [][]any{
		{"Adm No", "First name", "Surname"},
		{"x-1", "Zoë", "Müller"},
		{123, "Kofi", "Mensah"},
	}))
	wantBody(t, r, "1 numéro d’inscription est un simple nombre (le premier : 123 à la ligne 3).",
		"existe déjà sous la forme &#34;X-1&#34;")
	if strings.Contains(r.body, "is a plain number") || strings.Contains(r.body, "already exists") {
		t.Errorf("English left on the French preview:\n%s", r.body)
	}
	// A file that cannot be read at all says why in French.
	r = uploadFile(t, b, map[string]string{"mode": "add", "sheet": "Nope"}, "Form 2.xlsx", workbook(t, "Form 2", [][]any{
		{"registration_no", "first_name", "second_name"}}))
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "Le fichier n’a pas pu être lu : le classeur n’a pas de feuille &#34;Nope&#34; ; ses feuilles sont &#34;Form 2&#34;")
}
