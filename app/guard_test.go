package app

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/campus-saas/campus/store"
)

// role is a kind of user of the admin site: its groups and what it may do.
type role struct {
	name      string
	superuser bool
	groups    []string // nil: created without groups (the default: staff)
}

// rightsEnv is a school with one user per role, a student, a victim user
// and a custom group to act on.
type rightsEnv struct {
	*env
	users     map[string]store.User
	studentID int64
	victimID  string
	groupID   string // a custom group with add only ("Clerks")
}

func newRightsEnv(t *testing.T, name string) *rightsEnv {
	t.Helper()
	e := newEnv(t, name, envOptions{})
	ctx := context.Background()
	clerks, err := e.store.CreateGroup(ctx, "Clerks", []store.Permission{store.PermAdd})
	if err != nil {
		t.Fatal(err)
	}
	re := &rightsEnv{env: e, users: map[string]store.User{}, groupID: clerks.ID}
	for _, ro := range testRoles(clerks.ID) {
		u, err := e.store.CreateUser(ctx, store.NewUser{Username: ro.name, Password: "a-long-unusual-pw-93", IsSuperuser: ro.superuser, Groups: ro.groups})
		if err != nil {
			t.Fatal(err)
		}
		re.users[ro.name] = u
	}
	victim, err := e.store.CreateUser(ctx, store.NewUser{Username: "victim", Password: "a-long-unusual-pw-93"})
	if err != nil {
		t.Fatal(err)
	}
	re.victimID = victim.ID
	re.studentID = e.addStudent("R-1", "Rita", "Rights").ID
	return re
}

// testRoles are the roles every route is tried with; clerks is the ID of
// a custom group that may only add.
func testRoles(clerks string) []role {
	return []role{
		{name: "boss", superuser: true},
		{name: "staffer"}, // no groups given: the built-in staff group
		{name: "viewer", groups: []string{store.GroupViewer}},
		{name: "clerk", groups: []string{clerks}},
		{name: "nobody", groups: []string{}},
	}
}

// as is a browser holding a fresh session of the user named username.
func (re *rightsEnv) as(t *testing.T, username string) (*browser, store.Session) {
	t.Helper()
	token, _, err := re.store.CreateSession(context.Background(), re.users[username])
	if err != nil {
		t.Fatal(err)
	}
	b := re.browser()
	b.setCookie(sessionCookie, token)
	s, err := re.store.Session(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

// requestOf turns a route pattern into a request path for this school.
func (re *rightsEnv) requestOf(pattern string) (method, path string) {
	method, path = "GET", pattern
	if m, p, ok := strings.Cut(pattern, " "); ok {
		method, path = m, p
	}
	path = strings.TrimSuffix(path, "{$}")
	switch {
	case strings.HasPrefix(path, "/admin/students/{id}"):
		path = strings.Replace(path, "{id}", strconv.FormatInt(re.studentID, 10), 1)
	case strings.Contains(path, "{op}"):
		path = strings.Replace(path, "{op}", "1", 1) // no such import: 404 to those allowed
	case strings.HasPrefix(path, "/admin/users/{id}"):
		path = strings.Replace(path, "{id}", re.victimID, 1)
	case strings.HasPrefix(path, "/admin/groups/{id}"):
		path = strings.Replace(path, "{id}", re.groupID, 1)
	case path == "/admin/users/" && !strings.Contains(pattern, " "):
		path = "/admin/users/no/such/page/"
	case path == "/admin/groups/" && !strings.Contains(pattern, " "):
		path = "/admin/groups/no/such/page/"
	}
	return method, path
}

// Issue 27 (4): every admin route, with every role, is allowed exactly
// when the role holds the route's permission, and refused with 403
// otherwise; anonymous visitors are sent to the login (pages) or refused
// (forms, CSRF). The routes are the table routes.go serves from.
func TestEveryRouteEveryRole(t *testing.T) {
	re := newRightsEnv(t, "guarded")
	routes := re.srvRoutes(t)
	// What each route should need, written out independently of
	// routes.go: a route added there without an entry here, or with
	// another permission, fails.
	const anyone, super = store.Permission(""), store.PermSuperuser
	want := map[string]store.Permission{
		"GET /admin/{$}": anyone, "GET /admin/history/{$}": anyone, "GET /admin/history/export/{$}": anyone,
		"GET /admin/password/{$}": anyone, "POST /admin/password/{$}": anyone,
		"POST /admin/logout/{$}": anyone, "GET /admin/logout/{$}": anyone,
		"GET /admin/students/{$}": store.PermView, "GET /admin/students/{id}/change/{$}": store.PermView,
		"GET /admin/students/{id}/history/{$}": store.PermView, "GET /admin/students/print/{$}": store.PermView,
		"GET /admin/students/add/{$}": store.PermAdd, "POST /admin/students/add/{$}": store.PermAdd,
		"POST /admin/students/{id}/change/{$}":     store.PermChange,
		"GET /admin/students/{id}/delete/{$}":      store.PermDelete,
		"POST /admin/students/{id}/delete/{$}":     store.PermDelete,
		"POST /admin/students/delete-selected/{$}": store.PermDelete,
		"POST /admin/students/export-selected/{$}": store.PermExport,
		"POST /admin/students/change-status/{$}":   store.PermChange,
		"POST /admin/students/change-class/{$}":    store.PermChange,
		"GET /admin/students/export/{$}":           store.PermExport,
		"GET /admin/students/import/{$}":           store.PermImport, "POST /admin/students/import/{$}": store.PermImport,
		"GET /admin/students/import/{op}/progress/{$}": store.PermImport,
		"GET /admin/users/{$}":                         super, "GET /admin/users/add/{$}": super, "POST /admin/users/add/{$}": super,
		"GET /admin/users/{id}/change/{$}": super, "POST /admin/users/{id}/change/{$}": super,
		"GET /admin/users/{id}/password/{$}": super, "POST /admin/users/{id}/password/{$}": super,
		"POST /admin/users/{id}/resetlink/{$}": super, "POST /admin/users/{id}/unlock/{$}": super,
		"/admin/users/":         super,
		"GET /admin/groups/{$}": super, "GET /admin/groups/add/{$}": super, "POST /admin/groups/add/{$}": super,
		"GET /admin/groups/{id}/change/{$}": super, "POST /admin/groups/{id}/change/{$}": super,
		"POST /admin/groups/{id}/delete/{$}": super, "/admin/groups/": super,
		"GET /admin/settings/{$}": super, "POST /admin/settings/{$}": super, "POST /admin/settings/locale/{$}": super,
	}
	seen := map[string]bool{}
	for _, rt := range routes {
		need, ok := want[rt.pattern]
		switch {
		case !ok:
			t.Errorf("route %q is not in this test's table: say what it needs", rt.pattern)
		case need != rt.need:
			t.Errorf("route %q needs %q, want %q", rt.pattern, rt.need, need)
		}
		seen[rt.pattern] = true
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("route %q is no longer served", p)
		}
	}
	for _, rt := range routes {
		method, path := re.requestOf(rt.pattern)
		anon := re.browser()
		var r response
		if method == "GET" {
			r = anon.get(path)
			if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
				t.Errorf("anonymous %s %s: %d %q, want the login", method, path, r.code, r.location())
			}
		} else {
			r = anon.post(path, url.Values{})
			wantStatus(t, "anonymous "+method+" "+path, r, http.StatusForbidden)
		}
		for _, ro := range append(testRoles(re.groupID), role{name: "boss"}) {
			b, sess := re.as(t, ro.name)
			if method == "GET" {
				r = b.get(path)
			} else {
				r = b.post(path, url.Values{"csrf_token": {sess.CSRFToken}})
			}
			allowed := sess.Perms.Has(rt.need)
			switch {
			case allowed && (r.code == http.StatusForbidden || r.code >= 500 || method == "GET" && strings.HasPrefix(r.location(), "/admin/login/")):
				t.Errorf("%s %s %s (needs %q): %d, want allowed", ro.name, method, path, rt.need, r.code)
			case !allowed && r.code != http.StatusForbidden:
				t.Errorf("%s %s %s (needs %q): %d, want 403", ro.name, method, path, rt.need, r.code)
			case !allowed && !strings.Contains(r.body, "Permission denied"):
				t.Errorf("%s %s %s: 403 without the permission page", ro.name, method, path)
			}
		}
	}
}

func wantStatus(t *testing.T, what string, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: %d, want %d", what, r.code, code)
	}
}

// srvRoutes are the admin routes of the app under test.
func (re *rightsEnv) srvRoutes(t *testing.T) []adminRoute {
	t.Helper()
	s, err := newServer(Config{Tenant: re.tenant, Store: re.store})
	if err != nil {
		t.Fatal(err)
	}
	return s.adminRoutes()
}

// The permissions of each role as the store computes them: the guard
// test above depends on them being what the roles mean.
func TestRolePermissions(t *testing.T) {
	re := newRightsEnv(t, "perms")
	all := store.PermsOf(store.StudentPermissions...)
	for _, tc := range []struct {
		user string
		want store.Perms
	}{
		{"boss", store.AllPerms},
		{"staffer", all},
		{"viewer", store.PermsOf(store.PermView, store.PermExport)},
		{"clerk", store.PermsOf(store.PermAdd)},
		{"nobody", 0},
	} {
		_, sess := re.as(t, tc.user)
		if sess.Perms != tc.want {
			t.Errorf("%s: perms %v, want %v", tc.user, sess.Perms.List(), tc.want.List())
		}
	}
}

// Issue 27: a viewer sees the students and exports them; the pages offer
// nothing else (no add, import, delete, save), and every change is 403.
func TestViewerSeesAndExportsOnly(t *testing.T) {
	re := newRightsEnv(t, "viewing")
	b, sess := re.as(t, "viewer")
	list := b.get("/admin/students/")
	wantCode(t, list, http.StatusOK)
	wantBody(t, list, "Rita", `id="export-csv"`)
	wantNoBody(t, list, "Add student", "Import CSV", "Delete selected students")
	form := b.get(changeURL(re.studentID))
	wantCode(t, form, http.StatusOK)
	wantBody(t, form, `id="read-only"`, "<fieldset disabled")
	wantNoBody(t, form, `name="_save"`, "/delete/")
	exp := b.get("/admin/students/export/")
	wantCode(t, exp, http.StatusOK)
	wantBody(t, exp, "R-1,Rita,Rights")
	home := b.get("/admin/")
	wantBody(t, home, "My actions", ">View</a>")
	wantNoBody(t, home, "/admin/students/add/", "/admin/users/", "/admin/groups/")
	for path, form := range map[string]url.Values{
		changeURL(re.studentID): {"registration_no": {"R-1"}, "first_name": {"X"}, "second_name": {"Y"}},
		"/admin/students/add/":  {"registration_no": {"R-2"}, "first_name": {"X"}, "second_name": {"Y"}},
		"/admin/students/" + strconv.FormatInt(re.studentID, 10) + "/delete/": {},
		"/admin/students/delete-selected/":                                    {"ids": {strconv.FormatInt(re.studentID, 10)}},
	} {
		form.Set("csrf_token", sess.CSRFToken)
		wantCode(t, b.post(path, form), http.StatusForbidden)
	}
	if st, err := re.store.Student(context.Background(), re.studentID); err != nil || st.FirstName != "Rita" {
		t.Fatalf("student after the viewer's refused changes: %+v, %v", st, err)
	}
}

// An import in update mode changes students: import alone lets a user
// add by file, not update (preview or confirmation).
func TestImportUpdateNeedsChange(t *testing.T) {
	re := newRightsEnv(t, "importer")
	ctx := context.Background()
	g, err := re.store.CreateGroup(ctx, "Importers", []store.Permission{store.PermView, store.PermImport})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := re.store.SetUserGroups(ctx, re.users["nobody"].ID, []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	b, sess := re.as(t, "nobody")
	csv := "registration_no,first_name,second_name\nR-1,Rita,Renamed\n"
	r := b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": sess.CSRFToken, "mode": "update"}, "file", csv)
	wantCode(t, r, http.StatusForbidden)
	wantBody(t, r, "Can change students")
	r = b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": sess.CSRFToken, "mode": "add"}, "file",
		"registration_no,first_name,second_name\nR-9,Nia,New\n")
	if r.code == http.StatusForbidden {
		t.Fatalf("an add-mode import was refused: %d", r.code)
	}
	staffer, ss := re.as(t, "staffer")
	r = staffer.postMultipart("/admin/students/import/", map[string]string{"csrf_token": ss.CSRFToken, "mode": "update"}, "file", csv)
	if r.code == http.StatusForbidden {
		t.Fatalf("staff's update import was refused")
	}
}

// A change of a user's groups applies to the session already open.
func TestGroupChangeAppliesAtOnce(t *testing.T) {
	re := newRightsEnv(t, "atonce")
	b, _ := re.as(t, "viewer")
	wantCode(t, b.get("/admin/students/add/"), http.StatusForbidden)
	if _, err := re.store.SetUserGroups(context.Background(), re.users["viewer"].ID, []string{store.GroupViewer, re.groupID}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.get("/admin/students/add/"), http.StatusOK)
	if _, err := re.store.UpdateGroup(context.Background(), re.groupID, "Clerks", nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, b.get("/admin/students/add/"), http.StatusForbidden)
}

// Issue 27 cross-tenant: two schools with the same user (same ID and
// name) and a group of the same ID: each school's groups decide there
// alone; A's viewer cookie is nothing at B; A's groups and history never
// show at B.
func TestRightsCrossTenant(t *testing.T) {
	a := newRightsEnv(t, "alpha")
	b := newEnv(t, "beta", envOptions{})
	ctx := context.Background()
	bdb := b.db.(*mongo.Database)
	adb := a.db.(*mongo.Database)
	// B gets A's viewer (same _id, same name) as a member of a group
	// with A's Clerks ID that may delete; and A's custom group's ID.
	var viewerDoc, groupDoc bson.M
	if err := adb.Collection("users").FindOne(ctx, bson.D{{Key: "username", Value: "viewer"}}).Decode(&viewerDoc); err != nil {
		t.Fatal(err)
	}
	if err := adb.Collection("groups").FindOne(ctx, bson.D{{Key: "_id", Value: a.groupID}}).Decode(&groupDoc); err != nil {
		t.Fatal(err)
	}
	groupDoc["name"], groupDoc["name_lower"], groupDoc["permissions"] = "Deleters", "deleters", []string{"view_student", "delete_student"}
	viewerDoc["groups"] = []string{a.groupID}
	if _, err := bdb.Collection("groups").InsertOne(ctx, groupDoc); err != nil {
		t.Fatal(err)
	}
	if _, err := bdb.Collection("users").InsertOne(ctx, viewerDoc); err != nil {
		t.Fatal(err)
	}
	bUser, err := b.store.UserByID(ctx, a.users["viewer"].ID)
	if err != nil || bUser.Username != "viewer" {
		t.Fatalf("B's copy of the user: %+v, %v", bUser, err)
	}
	bPerms, err := b.store.PermsOf(ctx, bUser)
	if err != nil {
		t.Fatal(err)
	}
	aPerms, err := a.store.PermsOf(ctx, a.users["viewer"])
	if err != nil {
		t.Fatal(err)
	}
	if aPerms != store.PermsOf(store.PermView, store.PermExport) || bPerms != store.PermsOf(store.PermView, store.PermDelete) {
		t.Fatalf("same user and group IDs: A %v, B %v; each school's own groups should decide", aPerms.List(), bPerms.List())
	}

	// A's viewer session at B: anonymous there.
	av, _ := a.as(t, "viewer")
	thief := b.browser()
	thief.setCookie(sessionCookie, av.cookie(sessionCookie))
	if r := thief.get("/admin/students/"); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("B accepted A's viewer session: %d %q", r.code, r.location())
	}

	// A's groups and history are not at B.
	aBoss, bossSess := a.as(t, "boss")
	r := aBoss.post("/admin/groups/add/", url.Values{"csrf_token": {bossSess.CSRFToken}, "name": {"Alpha secretaries"}, "permissions": {"view_student"}})
	wantCode(t, r, http.StatusSeeOther)
	bAdmin := b.browser()
	bAdmin.login()
	groups := bAdmin.get("/admin/groups/")
	wantCode(t, groups, http.StatusOK)
	wantBody(t, groups, "Deleters", "Viewer", "Staff")
	wantNoBody(t, groups, "Alpha secretaries", "Clerks")
	hist := bAdmin.get("/admin/history/")
	wantCode(t, hist, http.StatusOK)
	wantNoBody(t, hist, "Alpha secretaries")
	wantBody(t, aBoss.get("/admin/history/"), "Alpha secretaries")
	// A's new group's ID names nothing at B.
	ag, err := a.store.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range ag {
		if g.Name == "Alpha secretaries" {
			if _, err := b.store.SetUserGroups(ctx, bUser.ID, []string{g.ID}); err == nil {
				t.Fatal("B accepted A's group ID for its user")
			}
			wantCode(t, bAdmin.get(groupChangeURL(g.ID)), http.StatusNotFound)
		}
	}
}
