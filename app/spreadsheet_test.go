package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"

	"github.com/campus-saas/campus/store"
)

// confirmImport sends the preview's confirmation form back.
func confirmImport(t *testing.T, b *browser, preview response) response {
	t.Helper()
	return b.postMultipart("/admin/students/import/", map[string]string{
		"csrf_token": csrfOf(t, preview.body), "confirm": "yes",
		"mode":    regexpValue(t, preview.body, "mode"),
		"plan":    regexpValue(t, preview.body, "plan"),
		"payload": regexpValue(t, preview.body, "payload")}, "", "")
}

func uploadCSV(t *testing.T, b *browser, mode, csv string) response {
	t.Helper()
	p := b.get("/admin/students/import/")
	return b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body), "mode": mode}, "file", csv)
}

// Update mode: the preview names new, changed and unchanged rows and
// writes nothing; the confirmation applies exactly that.
func TestImportUpdateMode(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	a := e.addStudent("U-1", "Amina", "Odhiambo")
	e.addStudent("U-2", "Kofi", "Mensah")
	b := e.browser()
	b.login()

	r := uploadCSV(t, b, "update", "Reg No;First Name;Surname\nU-1;Amina;Otieno\nU-2;Kofi;Mensah\nU-3;New;Pupil\n")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "1 new", "1 changed", "1 unchanged", "Odhiambo", "Otieno", "Add 1 and update 1", "fields separated by semicolons")
	if e.count() != 2 {
		t.Fatal("the update preview wrote")
	}
	c := confirmImport(t, b, r)
	wantCode(t, c, http.StatusSeeOther)
	wantBody(t, awaitImport(t, b, c), "Successfully imported 2 students (1 new, 1 updated).")
	if st, _ := e.store.Student(context.Background(), a.ID); st.SecondName != "Otieno" || e.count() != 3 {
		t.Fatalf("after the update import: %+v, %d students", st, e.count())
	}

	// The same file again: nothing to do, nothing offered.
	r = uploadCSV(t, b, "update", "Reg No;First Name;Surname\nU-1;Amina;Otieno\nU-2;Kofi;Mensah\nU-3;New;Pupil\n")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "0 new", "0 changed", "3 unchanged", "there is nothing to import")
	wantNoBody(t, r, `name="payload"`)

	// A preview confirmed after someone else changed a student it changes
	// is not applied: a fresh preview instead.
	r = uploadCSV(t, b, "update", "registration_no,first_name,second_name\nU-1,Amina,Third\n")
	if _, err := e.store.UpdateStudent(context.Background(), a.ID, store.StudentInput{RegistrationNo: "U-1", FirstName: "Amina", SecondName: "Meanwhile"}); err != nil {
		t.Fatal(err)
	}
	c = confirmImport(t, b, r)
	wantCode(t, c, http.StatusOK)
	wantBody(t, c, "changed since the preview", "Meanwhile")
	if st, _ := e.store.Student(context.Background(), a.ID); st.SecondName != "Meanwhile" {
		t.Fatalf("a stale confirmation overwrote an edit: %+v", st)
	}
}

// A Windows-1252 file is read, and the page says how to save UTF-8.
func TestImportWindows1252(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	csv, err := charmap.Windows1252.NewEncoder().String("registration_no;first_name;second_name\r\nW-1;Zoë;Müller\r\n")
	if err != nil {
		t.Fatal(err)
	}
	r := uploadCSV(t, b, "add", csv)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Zoë", "Müller", "Windows-1252", "CSV UTF-8")
	awaitImport(t, b, confirmImport(t, b, r))
	if p, _ := e.store.ListStudents(context.Background(), store.ListOptions{}); len(p.Students) != 1 || p.Students[0].FirstName != "Zoë" {
		t.Fatalf("imported %+v", p.Students)
	}
}

// The export has a BOM (unless asked not to), guards formulas, applies the
// list's search, and holds only this tenant's students.
func TestExportSpreadsheet(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	other := newEnv(t, "beta", envOptions{})
	other.addStudent("B-1", "Other", "School")
	e.addStudent("X-1", "=HYPERLINK(\"http://evil\")", "Zoë")
	e.addStudent("X-2", "Kofi", "Mensah")
	b := e.browser()
	b.login()
	r := b.get("/admin/students/export/")
	wantCode(t, r, http.StatusOK)
	if !strings.HasPrefix(r.body, "\uFEFFregistration_no,") {
		t.Errorf("export without a BOM: %q", r.body[:min(len(r.body), 40)])
	}
	wantBody(t, r, `X-1,"'=HYPERLINK(""http://evil"")",Zoë`)
	if strings.Contains(r.body, "B-1") {
		t.Error("tenant acme's export holds tenant beta's student")
	}
	r = b.get("/admin/students/export/?q=kofi&bom=0")
	if r.body != strings.Join(store.StudentFieldNames(), ",")+"\nX-2,Kofi,Mensah,,,,,,,enrolled,,,\n" {
		t.Errorf("export of a search without BOM = %q", r.body)
	}
	// The list's export link carries its search.
	wantBody(t, b.get("/admin/students/?q=kofi"), `href="/admin/students/export/?q=kofi"`)
}
