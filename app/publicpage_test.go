package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

// The public list never shows the internal ID.
func TestPublicListHasNoInternalID(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	st := e.addStudent("P-1", "Pat", "Lee")
	r := e.browser().get("/")
	wantBody(t, r, "P-1", "Pat")
	wantNoBody(t, r, fmt.Sprintf("<td>%d</td>", st.ID))
}

// Staff-only is per tenant: A's setting hides A's students from
// anonymous visitors (not from A's staff) and never touches B.
func TestPublicListStaffOnly(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	b := newEnv(t, "beta", envOptions{})
	a.addStudent("A-100", "Alice", "Alphason")
	b.addStudent("B-200", "Bob", "Betason")

	staff := a.browser()
	staff.login()
	p := staff.get(settingsURL)
	wantCode(t, p, http.StatusOK)
	wantBody(t, p, "Who can see the student list")
	// Without the CSRF token: refused, nothing changed.
	wantCode(t, staff.post(settingsURL, url.Values{"public_list": {"staff"}}), http.StatusForbidden)
	wantBody(t, a.browser().get("/"), "Alice")
	// Garbage value: refused.
	wantCode(t, staff.post(settingsURL, url.Values{"csrf_token": {csrfOf(t, p.body)}, "public_list": {"maybe"}}), http.StatusBadRequest)

	r := staff.post(settingsURL, url.Values{"csrf_token": {csrfOf(t, p.body)}, "public_list": {"staff"}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, staff.follow(r), "The settings were saved.", `id="public_list_staff" value="staff" checked`)

	anon := a.browser().get("/?q=alice")
	wantCode(t, anon, http.StatusOK)
	wantBody(t, anon, "for staff only", `href="/admin/login/"`)
	wantNoBody(t, anon, "Alice", "Alphason", "A-100")
	if cc := anon.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("staff-only page Cache-Control %q, want no-store", cc)
	}
	// Staff still see the list.
	wantBody(t, staff.get("/"), "Alice", "A-100")
	// Tenant B is untouched, and A's staff cookie means nothing at B.
	rb := b.browser().get("/")
	wantBody(t, rb, "Bob", "B-200")
	wantNoBody(t, rb, "for staff only")
	if st, err := b.store.Settings(t.Context()); err != nil || st.PublicListStaffOnly {
		t.Fatalf("tenant B's settings = %+v, %v", st, err)
	}
	cross := b.browser()
	cross.setCookie(sessionCookie, staff.cookie(sessionCookie))
	if err := b.store.SetPublicListStaffOnly(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	rc := cross.get("/")
	wantBody(t, rc, "for staff only")
	wantNoBody(t, rc, "Bob", "B-200")

	// Back to public.
	p = staff.get(settingsURL)
	wantCode(t, staff.post(settingsURL, url.Values{"csrf_token": {csrfOf(t, p.body)}, "public_list": {"public"}}), http.StatusSeeOther)
	wantBody(t, a.browser().get("/"), "Alice")
}

// A stale admin link stays in the admin layout with a way back.
func TestAdminNotFoundInAdminLayout(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	for path, msg := range map[string]string{
		"/admin/students/999999/change/": "no student at this address",
		"/admin/students/999999/delete/": "no student at this address",
		"/admin/students/abc/change/":    "no student at this address",
		"/admin/nothing":                 "no page at this address",
		"/admin/nothing/deeper/":         "no page at this address",
	} {
		r := b.get(path)
		wantCode(t, r, http.StatusNotFound)
		wantBody(t, r, msg, "administration", "Log out", `href="/admin/students/"`)
	}
	// Anonymous: the login page, as for every admin address.
	if r := e.browser().get("/admin/nothing"); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Errorf("anonymous stale link: %d %s", r.code, r.location())
	}
}

// Names of invisible characters only get a clear field error.
func TestInvisibleNameRefused(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	r := b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"V-1"}, "first_name": {"\u202E\u200B"}, "second_name": {"Fine"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "First name must contain letters: it has only invisible characters")
	if e.count() != 0 {
		t.Fatal("an invisible name was saved")
	}
}

// Save, delete and bulk delete return to the list as it was: search,
// sort and page kept. The back field can only name a list page.
func TestAdminKeepsListState(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	for i := range 120 {
		e.addStudent(fmt.Sprintf("K-%03d", i), "Kept", fmt.Sprintf("Name%03d", i))
	}
	e.addStudent("Z-1", "Other", "Person")
	b := e.browser()
	b.login()
	list := "/admin/students/?q=kept&sort=-second_name&page=2"
	r := b.get(list)
	wantCode(t, r, http.StatusOK)
	back := "back=" + url.QueryEscape("page=2&q=kept&sort=-second_name")
	wantBody(t, r, "?"+strings.ReplaceAll(back, "&", "&amp;"), `name="back" value="page=2&amp;q=kept&amp;sort=-second_name"`,
		`name="sort" value="-second_name"`)

	// Save from the change page: back to page 2 of the sorted search.
	st, _ := e.store.ListStudents(t.Context(), storeOpts("K-060"))
	id := st.Students[0].ID
	change := fmt.Sprintf("/admin/students/%d/change/?%s", id, back)
	p := b.get(change)
	wantBody(t, p, `name="back" value="page=2&amp;q=kept&amp;sort=-second_name"`)
	r = b.post(fmt.Sprintf("/admin/students/%d/change/", id), url.Values{"csrf_token": {csrfOf(t, p.body)},
		"back": {regexpValue(t, p.body, "back")}, "registration_no": {"K-060"}, "first_name": {"Kept"}, "second_name": {"Renamed"}, "_save": {"1"}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/students/?page=2&q=kept&sort=-second_name" {
		t.Fatalf("after save: %d %q", r.code, r.location())
	}
	// Bulk delete: the confirmation carries it on, the redirect lands there.
	r = b.get(list)
	c := b.post("/admin/students/delete-selected/", url.Values{"csrf_token": {csrfOf(t, r.body)},
		"back": {regexpValue(t, r.body, "back")}, "ids": {fmt.Sprint(id)}})
	wantBody(t, c, `name="back" value="page=2&amp;q=kept&amp;sort=-second_name"`)
	r = b.post("/admin/students/delete-selected/", url.Values{"csrf_token": {csrfOf(t, c.body)}, "confirm": {"yes"},
		"back": {regexpValue(t, c.body, "back")}, "ids": {fmt.Sprint(id)}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/students/?page=2&q=kept&sort=-second_name" {
		t.Fatalf("after bulk delete: %d %q", r.code, r.location())
	}
	// A back field naming anything else is reduced to a list page.
	p = b.get(fmt.Sprintf("/admin/students/%d/change/", e.addStudent("K-999", "A", "B").ID))
	r = b.post(fmt.Sprintf("/admin/students/%d/change/", e.addStudent("K-998", "A", "B").ID), url.Values{"csrf_token": {csrfOf(t, p.body)},
		"back": {"next=//evil.example/&sort=password"}, "registration_no": {"K-998"}, "first_name": {"A"}, "second_name": {"C"}})
	if r.location() != "/admin/students/" {
		t.Fatalf("a forged back field redirected to %q", r.location())
	}
}

func storeOpts(q string) store.ListOptions { return store.ListOptions{Query: q} }
