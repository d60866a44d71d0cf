package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

func TestAdminRequiresLogin(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	st := e.addStudent("A-1", "Ada", "Lovelace")
	b := e.browser()
	for _, path := range []string{
		"/admin/students/",
		"/admin/students/?q=ada&page=2",
		"/admin/students/add/",
		fmt.Sprintf("/admin/students/%d/change/", st.ID),
		fmt.Sprintf("/admin/students/%d/delete/", st.ID),
		"/admin/students/export/",
		"/admin/students/import/",
	} {
		r := b.get(path)
		wantCode(t, r, http.StatusSeeOther)
		want := loginURL(path)
		if r.location() != want {
			t.Errorf("GET %s redirects to %q, want %q", path, r.location(), want)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, got)
		}
	}
	// Unknown admin paths and unsafe methods are guarded too.
	wantCode(t, b.get("/admin/no/such/page/"), http.StatusSeeOther)
	wantCode(t, b.post("/admin/no/such/page/", url.Values{}), http.StatusForbidden)
	r := b.get("/admin/")
	if r.code != http.StatusSeeOther || r.location() != "/admin/login/" {
		t.Errorf("/admin/: %d %q", r.code, r.location())
	}
	// After logging in, next is honoured.
	p := b.get("/admin/login/?next=" + url.QueryEscape("/admin/students/?q=ada"))
	r = b.post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword},
		"csrf_token": {csrfOf(t, p.body)}, "next": {"/admin/students/?q=ada"}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/students/?q=ada" {
		t.Fatalf("login with next: %d %q", r.code, r.location())
	}
	wantBody(t, b.get("/admin/students/?q=ada"), "Lovelace")
	// Logged in, /admin/ is the admin home.
	home := b.get("/admin/")
	wantCode(t, home, http.StatusOK)
	wantBody(t, home, "Site administration", `href="/admin/students/"`, "Recent actions")
	wantCode(t, b.get("/admin/no/such/page/"), http.StatusNotFound)
}

func TestAddChangeDelete(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()

	// Add.
	r := b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {" A-1 "}, "first_name": {"Ada"}, "second_name": {"Lovelace"}})
	wantCode(t, r, http.StatusSeeOther)
	if r.location() != "/admin/students/" {
		t.Fatalf("after add: redirect to %q", r.location())
	}
	list := b.follow(r)
	wantBody(t, list, "The student “Ada Lovelace (A-1)” was added successfully.", ">A-1</a>")
	// The message is shown once.
	wantNoBody(t, b.get("/admin/students/"), "was added successfully")
	page, err := e.store.ListStudents(context.Background(), store.ListOptions{})
	if err != nil || page.Total != 1 {
		t.Fatalf("after add: %v students, err %v", page.Total, err)
	}
	st := page.Students[0]
	if st.RegistrationNo != "A-1" {
		t.Fatalf("registration number not trimmed: %q", st.RegistrationNo)
	}

	// Change, with "save and continue editing".
	change := fmt.Sprintf("/admin/students/%d/change/", st.ID)
	form := b.get(change)
	wantBody(t, form, `value="A-1"`, `value="Ada"`, `value="Lovelace"`)
	r = b.post(change, url.Values{"csrf_token": {csrfOf(t, form.body)}, "registration_no": {"A-1"},
		"first_name": {"Augusta Ada"}, "second_name": {"King"}, "_continue": {"1"}})
	wantCode(t, r, http.StatusSeeOther)
	if r.location() != change {
		t.Fatalf("save and continue: redirect to %q", r.location())
	}
	wantBody(t, b.follow(r), "The student “Augusta Ada King (A-1)” was changed successfully.", `value="Augusta Ada"`)
	got, err := e.store.Student(context.Background(), st.ID)
	if err != nil || got.FirstName != "Augusta Ada" || got.SecondName != "King" {
		t.Fatalf("after change: %+v, %v", got, err)
	}

	// Delete: a confirmation page, then POST.
	del := fmt.Sprintf("/admin/students/%d/delete/", st.ID)
	confirm := b.get(del)
	wantCode(t, confirm, http.StatusOK)
	wantBody(t, confirm, "Are you sure you want to delete the student “Augusta Ada King (A-1)”?")
	if e.count() != 1 {
		t.Fatal("the confirmation page deleted the student")
	}
	r = b.post(del, url.Values{"csrf_token": {csrfOf(t, confirm.body)}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, b.follow(r), "The student “Augusta Ada King (A-1)” was deleted successfully.", "No students yet")
	if _, err := e.store.Student(context.Background(), st.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// Gone: 404 for its pages.
	wantCode(t, b.get(change), http.StatusNotFound)
	wantCode(t, b.post(del, url.Values{"csrf_token": {csrfOf(t, confirm.body)}}), http.StatusNotFound)
	wantCode(t, b.get("/admin/students/abc/change/"), http.StatusNotFound)
}

func TestSaveAndAddAnother(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	r := b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"B-2"}, "first_name": {"Grace"}, "second_name": {"Hopper"}, "_addanother": {"1"}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/students/add/" {
		t.Fatalf("save and add another: %d %q", r.code, r.location())
	}
	wantBody(t, b.follow(r), "was added successfully", "Add student")
}

func TestValidationErrors(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	existing := e.addStudent("X-1", "Existing", "Student")
	b := e.browser()
	b.login()
	long := strings.Repeat("n", 256)
	tests := []struct {
		name        string
		regNo, f, s string
		errField    []string // fields that must show an error
		okField     []string // fields that must not
		wantInPage  []string
	}{
		{"all empty", "", "", "", []string{"registration_no", "first_name", "second_name"}, nil, []string{msgRequired}},
		{"bad registration number", "A 1<b>", "Ada", "Lovelace", []string{"registration_no"}, []string{"first_name", "second_name"},
			[]string{`value="A 1&lt;b&gt;"`, `value="Ada"`, `value="Lovelace"`, "Registration number must be 1-64"}},
		{"registration number too long", strings.Repeat("9", 65), "Ada", "Lovelace", []string{"registration_no"}, nil, nil},
		{"name too long", "A-2", long, "  ", []string{"first_name", "second_name"}, []string{"registration_no"},
			[]string{`value="A-2"`, "First name must be at most 255 characters."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/admin/students/add/", fmt.Sprintf("/admin/students/%d/change/", existing.ID)} {
				r := b.submit(path, path, url.Values{"registration_no": {tc.regNo}, "first_name": {tc.f}, "second_name": {tc.s}})
				wantCode(t, r, http.StatusUnprocessableEntity)
				wantBody(t, r, "Please correct the error")
				wantBody(t, r, tc.wantInPage...)
				for _, f := range tc.errField {
					wantBody(t, r, `id="err_`+f+`"`)
				}
				for _, f := range tc.okField {
					wantNoBody(t, r, `id="err_`+f+`"`)
				}
			}
			if n := e.count(); n != 1 {
				t.Errorf("%d students after invalid input, want 1", n)
			}
			got, _ := e.store.Student(context.Background(), existing.ID)
			if got.RegistrationNo != "X-1" || got.FirstName != "Existing" {
				t.Errorf("invalid change altered the student: %+v", got)
			}
		})
	}
}

func TestDuplicateRegistrationNumber(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("D-1", "First", "Holder")
	other := e.addStudent("D-2", "Second", "Holder")
	b := e.browser()
	b.login()

	r := b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"D-1"}, "first_name": {"New"}, "second_name": {"Comer"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "A student with this registration number already exists.", `value="D-1"`, `value="New"`, `value="Comer"`)
	if n := e.count(); n != 2 {
		t.Fatalf("%d students after a duplicate add, want 2", n)
	}

	change := fmt.Sprintf("/admin/students/%d/change/", other.ID)
	r = b.submit(change, change, url.Values{"registration_no": {"D-1"}, "first_name": {"Changed"}, "second_name": {"Name"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "A student with this registration number already exists.", `value="Changed"`)
	got, _ := e.store.Student(context.Background(), other.ID)
	if got.RegistrationNo != "D-2" || got.FirstName != "Second" {
		t.Fatalf("duplicate change altered the student: %+v", got)
	}
}

func TestBulkDelete(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	a := e.addStudent("K-1", "Keep", "Me")
	d1 := e.addStudent("K-2", "Drop", "One")
	d2 := e.addStudent("K-3", "Drop", "Two")
	b := e.browser()
	b.login()

	list := b.get("/admin/students/")
	token := csrfOf(t, list.body)
	ids := url.Values{"csrf_token": {token}, "ids": {fmt.Sprint(d1.ID), fmt.Sprint(d2.ID)}}
	confirm := b.post("/admin/students/delete-selected/", ids)
	wantCode(t, confirm, http.StatusOK)
	wantBody(t, confirm, "Are you sure you want to delete the selected 2 students?", "Drop One (K-2)", "Drop Two (K-3)")
	wantNoBody(t, confirm, "Keep Me")
	if e.count() != 3 {
		t.Fatal("the confirmation deleted students")
	}
	ids.Set("confirm", "yes")
	ids.Set("csrf_token", csrfOf(t, confirm.body))
	r := b.post("/admin/students/delete-selected/", ids)
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, b.follow(r), "Successfully deleted 2 students.")
	if e.count() != 1 {
		t.Fatalf("%d students left, want 1", e.count())
	}
	if _, err := e.store.Student(context.Background(), a.ID); err != nil {
		t.Fatal("the unselected student was deleted")
	}
	// Nothing selected: a warning, nothing changed.
	r = b.post("/admin/students/delete-selected/", url.Values{"csrf_token": {token}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, b.follow(r), "Students must be selected")
}

func TestAdminListSearchSortPaginate(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	for i := 1; i <= 51; i++ {
		e.addStudent(fmt.Sprintf("R-%03d", i), fmt.Sprintf("First%03d", i), fmt.Sprintf("Zed%03d", 52-i))
	}
	e.addStudent("Q-1", "Unique", "Quokka")
	b := e.browser()
	b.login()

	r := b.get("/admin/students/")
	wantBody(t, r, "52 students", ">Q-1</a>", ">R-049</a>", `href="/admin/students/?page=2"`)
	wantNoBody(t, r, ">R-050</a>")

	r = b.get("/admin/students/?q=quokka")
	wantBody(t, r, "1 matching “quokka”", ">Q-1</a>")
	wantNoBody(t, r, ">R-001</a>")

	r = b.get("/admin/students/?q=nothing-like-it")
	wantBody(t, r, "No students match “nothing-like-it”.")

	// Sorted by second name, descending: R-001 has Zed051, the largest.
	r = b.get("/admin/students/?sort=-second_name")
	wantBody(t, r, `aria-sort="descending"`)
	if i, j := strings.Index(r.body, ">R-001<"), strings.Index(r.body, ">R-002<"); i < 0 || j < 0 || i > j {
		t.Errorf("sort=-second_name: R-001 at %d, R-002 at %d", i, j)
	}
	// An unknown sort key is ignored.
	wantCode(t, b.get("/admin/students/?sort=password"), http.StatusOK)
}

func TestExport(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("E-2", "Emmy", "Noether")
	e.addStudent("E-1", "Edsger", "Dijkstra")
	b := e.browser()
	b.login()
	r := b.get("/admin/students/export/")
	wantCode(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="acme-students-`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "registration_no") || !strings.HasPrefix(lines[1], "E-1") {
		t.Errorf("export:\n%s", r.body)
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("I-9", "Already", "Here")
	b := e.browser()
	b.login()

	upload := func(csv string) response {
		t.Helper()
		p := b.get("/admin/students/import/")
		return b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body)}, "file", csv)
	}
	// A bad row: nothing imported, the line named.
	r := upload("registration_no,first_name,second_name\nI-1,Ok,Row\nbad reg,Bad,Row\n")
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "Nothing was imported", "<td>3</td>")
	if e.count() != 1 {
		t.Fatal("a file with a bad row imported something")
	}
	// A good file: a preview, nothing imported until confirmed.
	r = upload("registration_no,first_name,second_name\nI-1,Isaac,Newton\nI-2,Marie,Curie\n")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "2 valid student rows", "Isaac", "Import 2 students")
	if e.count() != 1 {
		t.Fatal("the preview imported students")
	}
	c := confirmImport(t, b, r)
	wantCode(t, c, http.StatusSeeOther)
	wantBody(t, awaitImport(t, b, c), "Successfully imported 2 students.")
	if e.count() != 3 {
		t.Fatalf("%d students after import, want 3", e.count())
	}
	// Rows already in the database: reported by the preview already, with
	// the counts the confirmation would give; nothing imported.
	// (A blank line too: line numbers stay those of the file.)
	r = upload("registration_no,first_name,second_name\nI-3,New,One\n\nI-9,Dup,Licate\n")
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "Nothing was imported", "<td>4</td>", "1 row has an error; 1 row is fine.", "already exists")
	if strings.Contains(r.body, `name="payload"`) {
		t.Error("a preview with a duplicate of an existing student offers to import")
	}
	if e.count() != 3 {
		t.Fatalf("%d students after a refused import, want 3", e.count())
	}
}

func TestImportTooLarge(t *testing.T) {
	e := newEnv(t, "acme", envOptions{maxUpload: 100})
	b := e.browser()
	b.login()
	p := b.get("/admin/students/import/")
	wantBody(t, p, "At most 100 bytes.")
	big := "registration_no,first_name,second_name\n" + strings.Repeat("Z-1,Big,File\n", 20)
	r := b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body)}, "file", big)
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "The file is larger than")
	// A body far beyond the limit is cut off: 413.
	huge := strings.Repeat("x", 2<<20)
	r = b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body)}, "file", huge)
	wantCode(t, r, http.StatusRequestEntityTooLarge)
	if e.count() != 0 {
		t.Fatal("imported from an oversized file")
	}
}
