package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/text/encoding/charmap"
)

// upload chooses a file on the import page, picks the mode and presses
// "Upload and preview".
func (b *tab) upload(s school, sys *devSystem, file, mode string, wantStatus int, shot string) {
	b.t.Helper()
	b.open(s.url(sys, "/admin/students/import/"), http.StatusOK, shot+"-form")
	b.step("choose "+filepath.Base(file), chromedp.SetUploadFiles(chromedp.CSS("#id_file"), []string{file}))
	b.step("mode "+mode, chromedp.Click(chromedp.CSS("#mode_"+mode)))
	b.press(`#import-form button[type=submit]`, wantStatus, shot)
}

// confirmImport presses the preview's confirmation, which answers at once
// with the import's progress page, and follows that page (as its own
// refresh does) until the import has ended; it returns what the page then
// says (#import-done or #import-failed).
func (b *tab) confirmImport(shot string) string {
	b.t.Helper()
	b.press(`#import-confirm button[type=submit]`, http.StatusOK, shot+"-progress")
	progress := value(b, "location", chromedp.Evaluate[string]("location.href"))
	if !strings.Contains(progress, "/admin/students/import/") || !strings.HasSuffix(progress, "/progress/") {
		b.t.Fatalf("the confirmation led to %s, not an import's progress page", progress)
	}
	for deadline := time.Now().Add(3 * time.Minute); b.count("#import-done, #import-failed") == 0; {
		if time.Now().After(deadline) {
			b.t.Fatalf("the import still runs after 3 minutes: %s", b.text())
		}
		time.Sleep(300 * time.Millisecond) // polling, not deciding
		b.open(progress, http.StatusOK, shot+"-progress")
	}
	b.shot(shot)
	if b.count("#import-done") == 0 {
		return b.textOf("#import-failed")
	}
	return b.textOf("#import-done")
}

// exportFromPage fetches an export link as the page's own script would,
// and returns its bytes (as a string of UTF-8 bytes, BOM kept).
func (b *tab) exportFromPage(path string) []byte {
	b.t.Helper()
	js := `fetch(` + jsString(path) + `).then(r => r.arrayBuffer()).then(a => Array.from(new Uint8Array(a)))`
	raw := value(b, "fetch "+path, chromedp.Evaluate[[]int](js, chromedp.EvalAwaitPromise))
	out := make([]byte, len(raw))
	for i, c := range raw {
		out[i] = byte(c)
	}
	return out
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestImportPreviewAndUpdate walks an import as a secretary would: the
// preview already reports a row that duplicates an existing student (the
// counts the confirmation would give), and imports nothing; the same file
// in update mode previews new and changed rows, writes nothing until
// confirmed, then applies exactly that.
func TestImportPreviewAndUpdate(t *testing.T) {
	sys := system(t)
	mombasa := school{"mombasa", sys.createTenant(t, "mombasa", "Mombasa Academy")}
	b := newTab(t, sys, desktop)
	b.forbidden = []string{"NRB/", "ACC/", "Nairobi School"}
	b.login(sys, mombasa)
	b.addStudent(sys, mombasa, student{"MBS/001", "Amina", "Odhiambo"}, "_save")
	b.addStudent(sys, mombasa, student{"MBS/002", "Baraka", "Mwangi"}, "_save")

	dir := t.TempDir()
	file := filepath.Join(dir, "mombasa.csv")
	csv := "registration_no,first_name,second_name\nMBS/003,Chiamaka,Darko\nMBS/001,Amina,Otieno\nMBS/002,Baraka,Mwangi\n"
	if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("add mode: the preview reports the duplicate of an existing student", func(t *testing.T) {
		defer b.as(t)()
		b.upload(mombasa, sys, file, "add", http.StatusUnprocessableEntity, "preview-duplicate")
		errs := b.textOf("#import-row-errors")
		for _, want := range []string{"Nothing was imported", "2 rows have errors; 1 row is fine.", "3", `"MBS/001" already exists`, `"MBS/002" already exists`} {
			if !strings.Contains(errs, want) {
				t.Errorf("the preview lacks %q:\n%s", want, errs)
			}
		}
		if b.count(`#import-confirm`) != 0 {
			t.Error("a preview with duplicates offers to import")
		}
		b.audit("import preview with errors")
		if got := exportedRows(t, sys, "mombasa"); got != 2 {
			t.Fatalf("%d students after the preview, want 2", got)
		}
	})

	t.Run("update mode: new, changed, unchanged; then exactly that", func(t *testing.T) {
		defer b.as(t)()
		b.upload(mombasa, sys, file, "update", http.StatusOK, "preview-update")
		if got := b.textOf("#import-summary"); got != "The file has 3 valid rows and no errors: 1 new, 1 changed, 1 unchanged. Nothing has been imported yet." {
			t.Errorf("summary %q", got)
		}
		changes := b.textOf("#import-changes")
		for _, want := range []string{"MBS/001", "Second name", "Odhiambo", "Otieno"} {
			if !strings.Contains(changes, want) {
				t.Errorf("the changes table lacks %q:\n%s", want, changes)
			}
		}
		if strings.Contains(changes, "MBS/002") {
			t.Errorf("an unchanged student is listed as changed:\n%s", changes)
		}
		b.see("Chiamaka") // the new row
		b.audit("update preview")
		if got := exportedRows(t, sys, "mombasa"); got != 2 {
			t.Fatalf("%d students after the update preview, want 2", got)
		}
		if got := b.confirmImport("updated"); got != "Successfully imported 2 students (1 new, 1 updated)." {
			t.Errorf("after the import: %q", got)
		}
		b.open(mombasa.url(sys, "/admin/students/"), http.StatusOK, "updated-list")
		b.see("MBS/003", "Otieno", "3 students")
		b.dontSee("Odhiambo")
		// The changed student's history says what the import changed.
		b.open(mombasa.url(sys, "/admin/students/?q=MBS/001"), http.StatusOK, "updated-student")
		b.press(`#changelist tbody a`, http.StatusOK, "updated-student-change")
		b.press(`#history-link`, http.StatusOK, "updated-student-history")
		b.see("Changed by import #1", "Second name: Odhiambo → Otieno")
		b.audit("history of an updated student")
	})
}

// TestSpreadsheetRoundTrip: a Windows-1252 file with semicolons and
// spreadsheet headers imports; the export has a BOM and guards formulas;
// edited and saved again (semicolons, BOM), it goes back in update mode
// with exactly the edit. Another school's export holds none of it.
func TestSpreadsheetRoundTrip(t *testing.T) {
	sys := system(t)
	kumasi := school{"kumasi", sys.createTenant(t, "kumasi", "Kumasi College")}
	b := newTab(t, sys, desktop)
	b.forbidden = []string{"NRB/", "ACC/"}
	b.login(sys, kumasi)
	dir := t.TempDir()

	legacy, err := charmap.Windows1252.NewEncoder().String(
		"Reg No;First Name;Surname\r\nKUM/1;Zoë;Müller\r\nKUM/2;François;Nuñez\r\nKUM/3;\"=HYPERLINK(\"\"http://evil.example\"\")\";Owusu\r\n")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "excel-1252.csv")
	if err := os.WriteFile(file, []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	b.upload(kumasi, sys, file, "add", http.StatusOK, "preview-1252")
	b.see("Read as Windows-1252 text, fields separated by semicolons.", "CSV UTF-8", "Zoë", "Müller", "François", "Nuñez")
	if got := b.confirmImport("imported-1252"); got != "Successfully imported 3 students." {
		t.Errorf("after importing: %q", got)
	}
	b.open(kumasi.url(sys, "/admin/students/"), http.StatusOK, "imported-1252-list")

	// The export, as the list's link gives it.
	link := b.attr("#export-csv", "href")
	if link != "/admin/students/export/" {
		t.Errorf("export link %q", link)
	}
	exported := b.exportFromPage(link)
	text := string(exported)
	if !strings.HasPrefix(text, "\uFEFFregistration_no,first_name,second_name,class,") { // then the record's other fields
		t.Fatalf("export does not start with a BOM and the header: %q", text[:min(len(text), 60)])
	}
	for _, want := range []string{"KUM/1,Zoë,Müller", `KUM/3,"'=HYPERLINK(""http://evil.example"")",Owusu`} {
		if !strings.Contains(text, want) {
			t.Errorf("export lacks %q:\n%s", want, text)
		}
	}
	// A search narrows the export.
	b.open(kumasi.url(sys, "/admin/students/?q=nu%C3%B1ez"), http.StatusOK, "search")
	if got := string(b.exportFromPage(b.attr("#export-csv", "href"))); strings.Count(got, "\n") != 2 || !strings.Contains(got, "KUM/2") {
		t.Errorf("export of the search:\n%s", got)
	}

	// Edited in a spreadsheet and saved as CSV UTF-8 with semicolons.
	edited := strings.NewReplacer(",", ";", "Müller", "Müller-伊藤").Replace(text)
	editedFile := filepath.Join(dir, "edited.csv")
	if err := os.WriteFile(editedFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	b.upload(kumasi, sys, editedFile, "update", http.StatusOK, "preview-edited")
	if got := b.textOf("#import-summary"); got != "The file has 3 valid rows and no errors: 0 new, 1 changed, 2 unchanged. Nothing has been imported yet." {
		t.Errorf("round trip preview: %q", got)
	}
	if got := b.confirmImport("imported-edited"); got != "Successfully imported 1 student (0 new, 1 updated)." {
		t.Errorf("after the round trip: %q", got)
	}
	b.open(kumasi.url(sys, "/admin/students/"), http.StatusOK, "imported-edited-list")
	b.see("Müller-伊藤", `=HYPERLINK("http://evil.example")`)

	// Nothing of it at another school.
	if out, err := sys.campus(nil, "manage", "accra", "students", "export"); err != nil || strings.Contains(out, "KUM/") {
		t.Fatalf("accra's export: %v\n%s", err, out)
	}
}

// TestLongNameOnPhone: a 255-letter name without spaces wraps on a 375px
// screen on every page that shows it; the registration number stays on
// screen; a stale admin link stays in the admin layout.
func TestLongNameOnPhone(t *testing.T) {
	sys := system(t)
	eldoret := school{"eldoret", sys.createTenant(t, "eldoret", "Eldoret Hills School")}
	b := newTab(t, sys, phone)
	b.step("phone", emulatePhone())
	b.login(sys, eldoret)
	long := strings.Repeat("Wanjikuuu", 28) + "abc" // 255 letters
	b.addStudent(sys, eldoret, student{"ELD/0001", long, "Kamau"}, "_continue")
	b.noSideways("change form after adding a long name (flash, breadcrumb, heading)")

	for _, p := range []struct{ path, name, regNo string }{
		{"/", "public list", `#students td.regno`},
		{"/?q=wanjikuuu", "public search", `#students td.regno`},
		{"/admin/students/", "admin list", `#changelist tbody th[scope=row] a`},
		{"/admin/students/?q=wanjikuuu", "admin search", `#changelist tbody th[scope=row] a`},
	} {
		b.open(eldoret.url(sys, p.path), http.StatusOK, p.name)
		b.noSideways(p.name)
		b.inView(p.regNo)
		if got := b.textOf(p.regNo); got != "ELD/0001" {
			t.Errorf("%s: registration number cell %q", p.name, got)
		}
	}
	b.open(eldoret.url(sys, "/admin/students/"), http.StatusOK, "list-for-delete")
	b.step("select the student", chromedp.Click(chromedp.CSS(`#changelist tbody input[type=checkbox]`)))
	b.press(`#changelist button[type=submit]`, http.StatusOK, "delete-selected-long")
	b.noSideways("delete confirmation")
	b.see("ELD/0001")

	// The public page has no internal ID column and the admin's headers.
	b.open(eldoret.url(sys, "/"), http.StatusOK, "public-headers")
	if got := b.textOf("#students thead"); !strings.Contains(got, "Registration number") || !strings.Contains(got, "First name") ||
		!strings.Contains(got, "Second name") || strings.Contains(got, "ID") {
		t.Errorf("public headers %q", got)
	}

	b.open(eldoret.url(sys, "/admin/students/999999/change/"), http.StatusNotFound, "stale-student")
	b.see("Page not found", "no student at this address", "Log out")
	b.noSideways("admin 404")
	b.audit("admin 404")
	b.open(eldoret.url(sys, "/admin/nothing"), http.StatusNotFound, "stale-admin-link")
	b.see("no page at this address", "Eldoret Hills School administration")
}

// TestStaffOnlyList: a school makes its list staff-only in the admin;
// anonymous visitors get a friendly page without any student, staff still
// see it, and another school is unaffected.
func TestStaffOnlyList(t *testing.T) {
	sys := system(t)
	nakuru := school{"nakuru", sys.createTenant(t, "nakuru", "Nakuru Girls")}
	staff := newTab(t, sys, desktop)
	staff.login(sys, nakuru)
	staff.addStudent(sys, nakuru, student{"NKR/001", "Pendo", "Wekesa"}, "_save")
	staff.open(nakuru.url(sys, "/admin/settings/"), http.StatusOK, "settings")
	staff.audit("settings page")
	staff.step("staff only", chromedp.Click(chromedp.CSS("#public_list_staff")))
	staff.press(`#settings-form button[type=submit]`, http.StatusOK, "settings-saved")
	if got := staff.textOf("#flash"); got != "The settings were saved." {
		t.Errorf("after saving: %q", got)
	}
	t.Cleanup(func() {
		staff.open(nakuru.url(sys, "/admin/settings/"), http.StatusOK, "settings-restore")
		staff.step("public", chromedp.Click(chromedp.CSS("#public_list_public")))
		staff.press(`#settings-form button[type=submit]`, http.StatusOK, "settings-restored")
	})

	anon := newTab(t, sys, phone)
	anon.step("phone", emulatePhone())
	anon.forbidden = []string{"NKR/001", "Pendo", "Wekesa"}
	anon.open(nakuru.url(sys, "/"), http.StatusOK, "staff-only")
	anon.see("The student register is for staff only", "log in to the admin site")
	anon.noSideways("staff-only page")
	anon.audit("staff-only page")
	html := value(anon, "read the HTML", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if strings.Contains(html, "NKR/001") || strings.Contains(html, "Pendo") {
		t.Error("the staff-only page's HTML holds a student")
	}
	anon.forbidden = nil
	anon.press(`#staff-only a[href="/admin/login/"]`, http.StatusOK, "login-from-staff-only")
	anon.see("Log in")

	staff.open(nakuru.url(sys, "/"), http.StatusOK, "staff-sees-list")
	staff.see("NKR/001", "Pendo")

	other := newTab(t, sys, desktop)
	other.open(sys.url("accra.school.localhost", "/"), http.StatusOK, "accra-public")
	other.dontSee("for staff only")
}

// TestSaveKeepsListState: from page 2 of a sorted search, opening a
// student and saving lands on that same page of that search.
func TestSaveKeepsListState(t *testing.T) {
	sys := system(t)
	seedCampusSchool(t, sys)
	b := newTab(t, sys, desktop)
	b.login(sys, campusSchool)
	list := "/admin/students/?q=CS%2F24&sort=-first_name&page=2"
	b.open(campusSchool.url(sys, list), http.StatusOK, "page-2-sorted")
	first := b.textOf(`#changelist tbody tr:first-child th[scope=row] a`)
	b.press(`#changelist tbody tr:first-child th[scope=row] a`, http.StatusOK, "change-from-page-2")
	if got := b.attr(`#id_registration_no`, "value"); got != first {
		t.Fatalf("opened %q, want %q", got, first)
	}
	b.press(`button[name=_save]`, http.StatusOK, "saved-back-on-page-2")
	b.see("was changed successfully", " matching “CS/24”")
	loc := value(b, "read the address", chromedp.Evaluate[string](`location.pathname + location.search`))
	if loc != "/admin/students/?page=2&q=CS%2F24&sort=-first_name" {
		t.Errorf("after save the list is at %q", loc)
	}
	if got := b.textOf(`.pagination [aria-current=page]`); got != "2" {
		t.Errorf("after save the current page is %q, want 2", got)
	}
	if got := b.attr("#q", "value"); got != "CS/24" {
		t.Errorf("after save the search box holds %q", got)
	}
}
