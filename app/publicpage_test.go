package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
