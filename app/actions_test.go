package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/campus-saas/campus/store"
)

// TestSelectAllMatching: "select all N matching" deletes every student
// the list shows with its search, across its pages, after a confirmation
// stating the number; a confirmation whose number is no longer right is
// shown again and deletes nothing.
func TestSelectAllMatching(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.fill(120) // second names Zed0001…Zed0120
	keep := e.addStudent("K-1", "Keep", "Me")
	b := e.browser()
	b.login()

	list := b.get("/admin/students/?q=zed00&per_page=25")
	wantBody(t, list, "99 matching", `name="select_across" value="1"`, "Select all 99 matching students", `formaction="/admin/students/delete-selected/"`)
	form := url.Values{"csrf_token": {csrfOf(t, list.body)}, "select_across": {"1"}, "back": {"per_page=25&q=zed00&page=2"}}
	confirm := b.post("/admin/students/delete-selected/", form)
	wantCode(t, confirm, http.StatusOK)
	wantBody(t, confirm, "Are you sure you want to delete all 99 students matching “zed00”?", "… and 49 more",
		`name="expect" value="99"`, `name="select_across" value="1"`)
	wantNoBody(t, confirm, `name="ids"`)
	if n := e.count(); n != 121 {
		t.Fatalf("the confirmation deleted: %d left", n)
	}
	// Another student matches since: the old confirmation does not delete.
	e.addStudent("Z-1", "Late", "Zed00late")
	form.Set("confirm", "yes")
	form.Set("expect", "99")
	form.Set("csrf_token", csrfOf(t, confirm.body))
	again := b.post("/admin/students/delete-selected/", form)
	wantCode(t, again, http.StatusOK)
	wantBody(t, again, "have changed since you asked", "all 100 students matching", `name="expect" value="100"`)
	if n := e.count(); n != 122 {
		t.Fatalf("a stale confirmation deleted: %d left", n)
	}
	form.Set("expect", "100")
	r := b.post("/admin/students/delete-selected/", form)
	wantCode(t, r, http.StatusSeeOther)
	if loc := r.location(); loc != "/admin/students/?per_page=25&q=zed00" {
		t.Errorf("after the action: %q, want the list's first page", loc)
	}
	wantBody(t, b.follow(r), "Successfully deleted 100 students.")
	if n := e.count(); n != 22 {
		t.Fatalf("%d left, want 22", n)
	}
	if _, err := e.store.Student(context.Background(), keep.ID); err != nil {
		t.Fatal("a student not matching was deleted")
	}
	// Ticked rows: only those, also beyond the 50 the confirmation lists.
	pg, err := e.store.ListStudents(context.Background(), store.ListOptions{PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	ticked := url.Values{"csrf_token": {csrfOf(t, list.body)}}
	for _, st := range pg.Students[:3] {
		ticked.Add("ids", fmt.Sprint(st.ID))
	}
	confirm = b.post("/admin/students/delete-selected/", ticked)
	wantBody(t, confirm, "delete the selected 3 students?")
	// Too many ticked: a clear 400, nothing changed.
	many := url.Values{"csrf_token": {csrfOf(t, list.body)}}
	for i := range maxSelected + 1 {
		many.Add("ids", fmt.Sprint(i+1))
	}
	r = b.post("/admin/students/delete-selected/", many)
	wantCode(t, r, http.StatusBadRequest)
	wantBody(t, r, "1,001 ticked; at most 1,000 at once. Nothing has been changed.")
}

// TestExportSelected: the export action writes the ticked students, or
// every one matching the list's search, and nobody else.
func TestExportSelected(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	a := e.addStudent("E-1", "Amina", "Otieno")
	e.addStudent("E-2", "Baraka", "Otieno")
	c := e.addStudent("E-3", "Amina", "Wanjiru")
	b := e.browser()
	b.login()
	token := csrfOf(t, b.get("/admin/students/").body)
	r := b.post("/admin/students/export-selected/", url.Values{"csrf_token": {token}, "ids": {fmt.Sprint(a.ID), fmt.Sprint(c.ID)}})
	wantCode(t, r, http.StatusOK)
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, "acme-students-selected-") || !strings.HasSuffix(cd, `.csv"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	wantBody(t, r, "E-1,Amina,Otieno", "E-3,Amina,Wanjiru")
	wantNoBody(t, r, "E-2")
	r = b.post("/admin/students/export-selected/?format=xlsx", url.Values{"csrf_token": {token}, "select_across": {"1"}, "back": {"q=otieno"}})
	wantCode(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "spreadsheetml") {
		t.Errorf("Content-Type %q", ct)
	}
	f, err := excelize.OpenReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.GetRows("Students")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1][0] != "E-1" || rows[2][0] != "E-2" {
		t.Errorf("xlsx of all matching otieno: %v", rows)
	}
}

// TestSelectBoxesOnlyForActors: select boxes and the actions menu are
// shown to users who may use at least one action, with only the actions
// they may use.
func TestSelectBoxesOnlyForActors(t *testing.T) {
	re := newRightsEnv(t, "boxes")
	re.fill(60)
	readers, err := re.store.CreateGroup(t.Context(), "Readers", []store.Permission{store.PermView})
	if err != nil {
		t.Fatal(err)
	}
	u, err := re.store.CreateUser(t.Context(), store.NewUser{Username: "reader", Password: "a-long-unusual-pw-93", Groups: []string{readers.ID}})
	if err != nil {
		t.Fatal(err)
	}
	re.users["reader"] = u
	for _, tt := range []struct {
		user  string
		boxes bool
		want  []string
		not   []string
	}{
		{"boss", true, []string{"Export selected (CSV)", "Delete selected students", "Select all 61 matching"}, nil},
		{"staffer", true, []string{"Export selected (Excel)", "Delete selected students"}, nil},
		{"viewer", true, []string{"Export selected (CSV)", "Select all 61 matching"}, []string{"Delete selected"}},
		{"reader", false, []string{"61 students"}, []string{"Export selected", "Delete selected", "select_across", `id="select-all"`}},
	} {
		b, _ := re.as(t, tt.user)
		r := b.get("/admin/students/")
		wantCode(t, r, http.StatusOK)
		if got := strings.Contains(r.body, `class="form-check-input row-select"`); got != tt.boxes {
			t.Errorf("%s: select boxes %v, want %v", tt.user, got, tt.boxes)
		}
		for _, s := range tt.want {
			if !strings.Contains(r.body, s) {
				t.Errorf("%s: no %q", tt.user, s)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(r.body, s) {
				t.Errorf("%s: %q shown", tt.user, s)
			}
		}
	}
}

// TestSelectAllCrossTenant: a select-all action in school A (same student
// IDs and registration numbers as school B) never touches B; A's export
// of everything selected holds nothing of B.
func TestSelectAllCrossTenant(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	b := newEnv(t, "beta", envOptions{})
	a.fill(40)
	b.fill(40)
	b.addStudent("B-ONLY", "Beta", "Only")
	ba := a.browser()
	ba.login()
	token := csrfOf(t, ba.get("/admin/students/").body)
	r := ba.post("/admin/students/export-selected/", url.Values{"csrf_token": {token}, "select_across": {"1"}})
	wantCode(t, r, http.StatusOK)
	wantNoBody(t, r, "B-ONLY", "Beta")
	if got := strings.Count(r.body, "\n"); got != 41 {
		t.Errorf("A's export has %d lines, want 41", got)
	}
	r = ba.post("/admin/students/delete-selected/", url.Values{"csrf_token": {token}, "select_across": {"1"}, "confirm": {"yes"}, "expect": {"40"}})
	wantCode(t, r, http.StatusSeeOther)
	if n := a.count(); n != 0 {
		t.Errorf("A has %d students left, want 0", n)
	}
	if n := b.count(); n != 41 {
		t.Errorf("B has %d students, want 41: A's select-all reached B", n)
	}
	// A's session means nothing at B: the action is refused there.
	bb := b.browser()
	bb.setCookie(sessionCookie, ba.cookie(sessionCookie))
	r = bb.post("/admin/students/delete-selected/", url.Values{"csrf_token": {token}, "select_across": {"1"}, "confirm": {"yes"}, "expect": {"41"}})
	if r.code != http.StatusForbidden {
		t.Errorf("A's cookie at B: %d, want 403", r.code)
	}
	if n := b.count(); n != 41 {
		t.Errorf("B has %d students after A's cookie acted there", n)
	}
}
