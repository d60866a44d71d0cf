package app

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

const (
	staffUser     = "secretary"
	staffPassword = "staff-password-7"
)

// addStaff adds a staff member through the users admin, as a superuser
// (logged in in b) would, and returns the new user's id.
func addStaff(t *testing.T, b *browser, username string, superuser bool) string {
	t.Helper()
	f := url.Values{"username": {username}, "email": {username + "@example.com"},
		"password1": {staffPassword}, "password2": {staffPassword}}
	if superuser {
		f.Set("is_superuser", "on")
	}
	r := b.submit("/admin/users/add/", "/admin/users/add/", f)
	if r.code != http.StatusSeeOther || r.location() != usersURL {
		t.Fatalf("add user %s: %d %q\n%s", username, r.code, r.location(), r.body)
	}
	list := b.follow(r)
	wantBody(t, list, "The user “"+username+"” was added successfully.")
	m := regexp.MustCompile(`href="/admin/users/([0-9a-f]+)/change/">` + regexp.QuoteMeta(username) + `<`).FindStringSubmatch(list.body)
	if m == nil {
		t.Fatalf("user %s not in the list:\n%s", username, list.body)
	}
	return m[1]
}

func (e *env) loggedIn(user, password string) *browser {
	e.t.Helper()
	b := e.browser()
	if r := b.tryLogin(user, password); r.code != http.StatusSeeOther {
		e.t.Fatalf("login %s: %d\n%s", user, r.code, r.body)
	}
	return b
}

// A superuser adds a staff member, who logs in, manages students, and is
// refused every users URL by the server, not just by hidden links.
func TestStaffCannotManageUsers(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	admin := e.browser()
	admin.login()
	home := admin.get("/admin/")
	wantBody(t, home, `href="/admin/users/"`)
	staffID := addStaff(t, admin, staffUser, false)
	suID := addStaff(t, admin, "deputy", true)

	staff := e.loggedIn(staffUser, staffPassword)
	home = staff.get("/admin/")
	wantCode(t, home, http.StatusOK)
	wantBody(t, home, `href="/admin/students/"`)
	wantNoBody(t, home, `href="/admin/users/"`)
	wantCode(t, staff.get("/admin/students/"), http.StatusOK)
	r := staff.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"S-1"}, "first_name": {"Added"}, "second_name": {"ByStaff"}})
	wantCode(t, r, http.StatusSeeOther)

	csrf := csrfOf(t, staff.get("/admin/students/").body)
	for _, path := range []string{"/admin/users/", "/admin/users/add/", userChangeURL(staffID), userChangeURL(suID), "/admin/users/nope/"} {
		r := staff.get(path)
		wantCode(t, r, http.StatusForbidden)
		wantBody(t, r, "Only superusers can manage users, groups and site settings.")
	}
	// Site settings (public list or staff-only) are the superusers' too.
	wantCode(t, staff.get("/admin/settings/"), http.StatusForbidden)
	wantNoBody(t, staff.get("/admin/"), `href="/admin/settings/"`)
	wantBody(t, admin.get("/admin/"), `href="/admin/settings/"`)
	posts := map[string]url.Values{
		"/admin/settings/":  {"public_list": {"staff"}},
		"/admin/users/add/": {"username": {"intruder"}, "password1": {staffPassword}, "password2": {staffPassword}, "is_superuser": {"on"}},
		// Promote oneself, or demote and deactivate a superuser.
		userChangeURL(staffID):                 {"is_superuser": {"on"}, "is_active": {"on"}},
		userChangeURL(suID):                    {"email": {""}},
		"/admin/users/" + suID + "/resetlink/": {},
	}
	for path, f := range posts {
		f.Set("csrf_token", csrf)
		wantCode(t, staff.post(path, f), http.StatusForbidden)
	}
	if set, err := e.store.Settings(t.Context()); err != nil || set.PublicListStaffOnly {
		t.Errorf("settings after staff's POST: %+v, %v; want the list still public", set, err)
	}
	users, err := e.store.Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		switch {
		case u.Username == "intruder":
			t.Error("staff created a user")
		case u.Username == staffUser && u.IsSuperuser:
			t.Error("staff promoted themselves")
		case u.Username == "deputy" && (!u.IsSuperuser || !u.IsActive):
			t.Error("staff changed a superuser")
		}
	}
	// A staff member promoted by a superuser gets users at once, in the
	// session already open.
	r = admin.submit(userChangeURL(staffID), userChangeURL(staffID), url.Values{"email": {"s@example.com"}, "is_superuser": {"on"}, "is_active": {"on"}})
	wantCode(t, r, http.StatusSeeOther)
	wantCode(t, staff.get("/admin/users/"), http.StatusOK)
}

func TestUserFormErrors(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	tests := []struct {
		name   string
		fields url.Values
		want   string
	}{
		{"mismatch", url.Values{"username": {"clerk"}, "password1": {staffPassword}, "password2": {"other-password-1"}}, msgPasswordMismatch},
		{"numeric", url.Values{"username": {"clerk"}, "password1": {"1234567890"}, "password2": {"1234567890"}}, "This password is entirely numeric."},
		{"taken", url.Values{"username": {"ADMIN"}, "password1": {staffPassword}, "password2": {staffPassword}}, "A user with that username already exists."},
		{"bad username", url.Values{"username": {"a b"}, "password1": {staffPassword}, "password2": {staffPassword}}, "Username must be 1-150 letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.submit("/admin/users/add/", "/admin/users/add/", tt.fields)
			wantCode(t, r, http.StatusUnprocessableEntity)
			wantBody(t, r, tt.want)
		})
	}
	if users, _ := e.store.Users(t.Context()); len(users) != 1 {
		t.Fatalf("%d users after refused adds, want 1", len(users))
	}
	// A superuser cannot demote or deactivate themselves.
	me := e.userID(testUser)
	r := b.submit(userChangeURL(me), userChangeURL(me), url.Values{"email": {"a@example.com"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "You cannot remove your own superuser status or deactivate yourself")
	if u, _ := e.store.UserByID(t.Context(), me); !u.IsSuperuser || !u.IsActive {
		t.Fatalf("superuser changed themselves: %+v", u)
	}
}

func (e *env) userID(username string) string {
	e.t.Helper()
	users, err := e.store.Users(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range users {
		if u.Username == username {
			return u.ID
		}
	}
	e.t.Fatalf("no user %s", username)
	return ""
}

// Deactivating a user ends their sessions at once and refuses their
// logins.
func TestDeactivateEndsSessions(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	admin := e.browser()
	admin.login()
	id := addStaff(t, admin, staffUser, false)
	staff := e.loggedIn(staffUser, staffPassword)
	wantCode(t, staff.get("/admin/students/"), http.StatusOK)

	r := admin.submit(userChangeURL(id), userChangeURL(id), url.Values{"email": {"s@example.com"}})
	wantCode(t, r, http.StatusSeeOther)
	list := admin.follow(r)
	wantBody(t, list, "The user “secretary” was changed successfully.")

	r = staff.get("/admin/students/")
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("deactivated user's session still works: %d %q", r.code, r.location())
	}
	r = e.browser().tryLogin(staffUser, staffPassword)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, msgBadLogin)
}

// Change own password: old password, new twice; the other sessions end,
// this one continues.
func TestChangeOwnPassword(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	here := e.browser()
	here.login()
	elsewhere := e.browser()
	elsewhere.login()
	const newPassword = "brand-new-horse-7"

	tests := []struct {
		name   string
		fields url.Values
		want   string
	}{
		{"wrong old", url.Values{"old_password": {"nope-nope-1"}, "new_password1": {newPassword}, "new_password2": {newPassword}}, msgWrongOldPassword},
		{"mismatch", url.Values{"old_password": {testPassword}, "new_password1": {newPassword}, "new_password2": {newPassword + "x"}}, msgPasswordMismatch},
		{"too short", url.Values{"old_password": {testPassword}, "new_password1": {"short1"}, "new_password2": {"short1"}}, "This password is too short. It must contain at least 8 characters."},
		{"missing", url.Values{"new_password1": {newPassword}, "new_password2": {newPassword}}, msgRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := here.submit(passwordURL, passwordURL, tt.fields)
			wantCode(t, r, http.StatusUnprocessableEntity)
			wantBody(t, r, tt.want)
		})
	}
	wantCode(t, elsewhere.get("/admin/students/"), http.StatusOK)

	r := here.submit(passwordURL, passwordURL, url.Values{"old_password": {testPassword}, "new_password1": {newPassword}, "new_password2": {newPassword}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/" {
		t.Fatalf("change: %d %q\n%s", r.code, r.location(), r.body)
	}
	wantBody(t, here.follow(r), "Your password was changed.")
	wantCode(t, here.get("/admin/students/"), http.StatusOK)
	if r := elsewhere.get("/admin/students/"); r.code != http.StatusSeeOther {
		t.Fatalf("the other session survived: %d", r.code)
	}
	wantBody(t, e.browser().tryLogin(testUser, testPassword), msgBadLogin)
	if r := e.browser().tryLogin(testUser, newPassword); r.code != http.StatusSeeOther {
		t.Fatalf("new password refused: %d", r.code)
	}
	if strings.Contains(e.logs.String(), newPassword) || strings.Contains(e.logs.String(), testPassword) {
		t.Error("a password is in the logs")
	}
}

var resetLinkRE = regexp.MustCompile(`id="reset-link" value="([^"]+)"`)

// issueResetLink presses the button on the user's page and returns the
// link shown.
func issueResetLink(t *testing.T, admin *browser, id string) string {
	t.Helper()
	r := admin.submit(userChangeURL(id), "/admin/users/"+id+"/resetlink/", nil)
	wantCode(t, r, http.StatusOK)
	m := resetLinkRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no reset link on the page:\n%s", r.body)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// A reset link issued by a superuser works once, on the tenant's primary
// host; a bad password keeps it; a second use is refused; the token never
// reaches the log.
func TestResetLink(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	admin := e.browser()
	admin.login()
	id := addStaff(t, admin, staffUser, false)
	staff := e.loggedIn(staffUser, staffPassword)

	// Issued from a secondary host, the link names the primary one.
	other := e.browserAt("www.acme.example")
	other.login()
	link := issueResetLink(t, other, id)
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "http" || u.Host != e.host() || u.Path != resetURL {
		t.Fatalf("link %q: want http://%s%s?token=…", link, e.host(), resetURL)
	}
	token := u.Query().Get("token")

	person := e.browser()
	form := person.get(u.RequestURI())
	wantCode(t, form, http.StatusOK)
	wantBody(t, form, `id="reset-username">secretary<`)

	// Mismatch and a weak password: refused, the link still works.
	for _, f := range []url.Values{
		{"token": {token}, "new_password1": {"reset-pass-11"}, "new_password2": {"reset-pass-12"}},
		{"token": {token}, "new_password1": {"12345678901"}, "new_password2": {"12345678901"}},
	} {
		f.Set("csrf_token", csrfOf(t, form.body))
		wantCode(t, person.post(resetURL, f), http.StatusUnprocessableEntity)
	}
	f := url.Values{"token": {token}, "new_password1": {"reset-pass-11"}, "new_password2": {"reset-pass-11"}, "csrf_token": {csrfOf(t, form.body)}}
	r := person.post(resetURL, f)
	if r.code != http.StatusSeeOther || r.location() != "/admin/login/" {
		t.Fatalf("reset: %d %q\n%s", r.code, r.location(), r.body)
	}
	wantBody(t, person.follow(r), "Your password has been set.")
	if r := staff.get("/admin/students/"); r.code != http.StatusSeeOther {
		t.Error("the user's session survived the reset")
	}
	if r := e.browser().tryLogin(staffUser, "reset-pass-11"); r.code != http.StatusSeeOther {
		t.Fatalf("new password refused: %d", r.code)
	}
	// Used once: refused on the form and on submission, twice.
	for range 2 {
		r := person.post(resetURL, f)
		wantCode(t, r, http.StatusGone)
		wantBody(t, r, "invalid, has expired or has already been used")
		wantCode(t, person.get(u.RequestURI()), http.StatusGone)
	}
	if r := e.browser().tryLogin(staffUser, "reset-pass-11"); r.code != http.StatusSeeOther {
		t.Fatal("a refused reuse changed the password")
	}
	wantCode(t, person.get(resetURL+"?token=garbage"), http.StatusGone)
	// Without the anonymous CSRF token: 403.
	wantCode(t, e.browser().post(resetURL, url.Values{"token": {token}}), http.StatusForbidden)
	if strings.Contains(e.logs.String(), token) {
		t.Error("the reset token is in the logs")
	}
}

// History: every add, change, delete, bulk delete and import is recorded
// with who and what; the admin home shows recent actions; the student's
// page links to its history.
func TestHistoryRecorded(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	admin := e.browser()
	admin.login()
	addStaff(t, admin, staffUser, false)
	b := e.loggedIn(staffUser, staffPassword)

	wantBody(t, b.get("/admin/"), "None available.")
	r := b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"H-1"}, "first_name": {"Zoe"}, "second_name": {"Achieng"}})
	wantCode(t, r, http.StatusSeeOther)
	st, err := e.store.ListStudents(t.Context(), store.ListOptions{})
	if err != nil || len(st.Students) != 1 {
		t.Fatal(err)
	}
	id := st.Students[0].ID
	change := changeURL(id)
	r = b.submit(change, change, url.Values{"registration_no": {"H-1"}, "first_name": {"Zoë"}, "second_name": {"Achieng"}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, b.get(change), fmt.Sprintf(`href="/admin/students/%d/history/"`, id))

	hist := b.get(fmt.Sprintf("/admin/students/%d/history/", id))
	wantCode(t, hist, http.StatusOK)
	wantBody(t, hist, "Added", "Changed", "secretary", "<del>Zoe</del> → <ins class=\"text-decoration-none\">Zoë</ins>")
	if strings.Count(hist.body, "First name:") != 2 {
		t.Errorf("want First name in the add and the change entry:\n%s", hist.body)
	}

	// Import and bulk delete, as the superuser.
	preview := uploadCSV(t, admin, "add", "registration_no,first_name,second_name\nI-1,Imp,One\nI-2,Imp,Two\n")
	wantCode(t, preview, http.StatusOK)
	awaitImport(t, admin, confirmImport(t, admin, preview))
	imported := e.studentIDs("I-1", "I-2")
	r = admin.submit("/admin/students/", "/admin/students/delete-selected/", url.Values{
		"ids": {fmt.Sprint(imported[0]), fmt.Sprint(imported[1])}, "confirm": {"yes"}})
	wantCode(t, r, http.StatusSeeOther)
	r = admin.submit(fmt.Sprintf("/admin/students/%d/delete/", id), fmt.Sprintf("/admin/students/%d/delete/", id), nil)
	wantCode(t, r, http.StatusSeeOther)

	home := admin.get("/admin/")
	wantBody(t, home, "Deleted", "Deleted (bulk)", "Imported", "2 students", "Imp One (I-1)", "Zoë Achieng (H-1)", "secretary")
	recent, _ := e.store.RecentHistory(t.Context(), 10, false)
	var actions []string
	for _, en := range recent {
		actions = append(actions, string(en.Action)+" by "+en.Username)
	}
	want := []string{"delete by admin", "bulk_delete by admin", "bulk_delete by admin", "import by admin", "change by secretary", "add by secretary"}
	if strings.Join(actions, ", ") != strings.Join(want, ", ") {
		t.Fatalf("recent actions:\n %v\nwant\n %v", actions, want)
	}
	// Superusers also see what happened to user accounts; staff do not.
	wantBody(t, home, "user secretary")
	wantNoBody(t, b.get("/admin/"), "user secretary")
	// The deleted student's history stays readable: who deleted it.
	gone := b.get(fmt.Sprintf("/admin/students/%d/history/", id))
	wantCode(t, gone, http.StatusOK)
	wantBody(t, gone, "This student has been deleted.", "Deleted", "<del>H-1</del>")
	wantCode(t, b.get("/admin/students/999999/history/"), http.StatusNotFound)
}

func (e *env) studentIDs(regNos ...string) []int64 {
	e.t.Helper()
	pg, err := e.store.ListStudents(e.t.Context(), store.ListOptions{PerPage: 500})
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []int64
	for _, r := range regNos {
		for _, st := range pg.Students {
			if st.RegistrationNo == r {
				ids = append(ids, st.ID)
			}
		}
	}
	if len(ids) != len(regNos) {
		e.t.Fatalf("students %v: found %v", regNos, ids)
	}
	return ids
}

// Tenant A's admin never sees B's users or history; a session, a reset
// link and a user id of A's staff are useless at B.
func TestStaffCrossTenant(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	bEnv := newEnv(t, "beta", envOptions{})
	aAdmin := a.browser()
	aAdmin.login()
	bAdmin := bEnv.browser()
	bAdmin.login()
	aStaff := addStaff(t, aAdmin, "alpha-clerk", false)
	addStaff(t, bAdmin, "beta-clerk", false)
	r := bAdmin.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"B-1"}, "first_name": {"Beta"}, "second_name": {"Secret"}})
	wantCode(t, r, http.StatusSeeOther)

	wantNoBody(t, aAdmin.get("/admin/users/"), "beta-clerk")
	wantNoBody(t, aAdmin.get("/admin/"), "Beta Secret")
	// A's user id names nobody at B.
	wantCode(t, bAdmin.get(userChangeURL(aStaff)), http.StatusNotFound)
	// B's student's history is not at A.
	bID := bEnv.studentIDs("B-1")[0]
	wantCode(t, aAdmin.get(fmt.Sprintf("/admin/students/%d/history/", bID)), http.StatusNotFound)

	staff := a.loggedIn("alpha-clerk", staffPassword)
	thief := bEnv.browser()
	thief.setCookie(sessionCookie, staff.cookie(sessionCookie))
	if r := thief.get("/admin/"); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("B accepted A's staff session: %d %q", r.code, r.location())
	}
	link := issueResetLink(t, aAdmin, aStaff)
	u, _ := url.Parse(link)
	wantCode(t, bEnv.browser().get(u.RequestURI()), http.StatusGone)
}

// Issue 25: a superuser sees on a user's page that the user is locked
// out, and why, and lifts every lock with one button (address locks
// included); the user then logs in from where they were locked.
func TestSuperuserUnlocksUser(t *testing.T) {
	e := newEnv(t, "acme", envOptions{storeOpts: store.Options{MaxFailures: 3, MaxAddressFailures: 5}})
	admin := e.browser()
	admin.login()
	id := addStaff(t, admin, staffUser, false)
	const nat = "203.0.113.60"
	pupil := e.browserFrom(nat)
	for i := range 5 { // the address fills with unknown usernames
		pupil.tryLogin(fmt.Sprintf("nobody%d", i), "wrong-password-1")
	}
	// One typo of the secretary's there: from now on the address's lock
	// stops the secretary too.
	e.browserFrom(nat).tryLogin(staffUser, "wrong-password-1")
	if r := e.browserFrom(nat).tryLogin(staffUser, staffPassword); r.code != http.StatusTooManyRequests {
		t.Fatalf("the secretary is not locked out: %d", r.code)
	}

	page := admin.get(userChangeURL(id))
	wantBody(t, page, "is locked out", "from "+nat+": 1 failed login;", "the address is locked until", `id="unlock-user"`)
	r := admin.submit(userChangeURL(id), "/admin/users/"+id+"/unlock/", nil)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, `id="unlocked-panel"`, "Unlocked <strong>"+staffUser+"</strong>", "from "+nat+": 1 failed login;")
	if r := e.browserFrom(nat).tryLogin(staffUser, staffPassword); r.code != http.StatusSeeOther {
		t.Fatalf("the secretary after the unlock: %d, want logged in", r.code)
	}
	wantNoBody(t, admin.get(userChangeURL(id)), `id="unlock-user"`)
	// Staff cannot unlock anybody (the whole /admin/users/ subtree).
	staff := e.browser()
	if r := staff.tryLogin(staffUser, staffPassword); r.code != http.StatusSeeOther {
		t.Fatalf("staff login: %d", r.code)
	}
	if r := staff.submit("/admin/students/", "/admin/users/"+id+"/unlock/", nil); r.code != http.StatusForbidden {
		t.Errorf("staff POST unlock: %d, want 403", r.code)
	}
}
