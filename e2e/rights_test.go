package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Issue 27: a viewer, in a real browser. A superuser adds a user in the
// built-in Viewer group (Staff unticked); the viewer logs in, sees the
// students and a read-only student page, exports the list, and gets 403
// (the permission page) for every change: the pages that change, and
// every form action posted with the viewer's own CSRF token.
func TestViewerSeesAndExportsOnly(t *testing.T) {
	sys := system(t)
	sch := school{"readers", sys.createTenant(t, "readers", "Readers Academy")}
	const (
		reader     = "reader"
		readerPass = "quiet-lantern-64"
	)
	head := newTab(t, sys, desktop)
	head.login(sys, sch)
	head.addStudent(sys, sch, student{"RD/1", "Wanjiru", "Kamau"}, "_continue")
	id := strings.TrimSuffix(strings.TrimPrefix(head.attr(`#history-link`, "href"), "/admin/students/"), "/history/")

	t.Run("superuser adds a viewer", func(t *testing.T) {
		defer head.as(t)()
		head.open(sch.url(sys, "/admin/users/add/"), http.StatusOK, "user-add-form")
		head.see("Groups", "Staff", "Viewer")
		head.fill("#id_username", reader)
		head.fill("#id_password1", readerPass)
		head.fill("#id_password2", readerPass)
		head.step("untick Staff, tick Viewer", chromedp.Click(chromedp.CSS("#group_staff")), chromedp.Click(chromedp.CSS("#group_viewer")))
		head.press(`button[name=_save]`, http.StatusOK, "viewer-added")
		head.see("The user “reader” was added successfully.")
		head.open(sch.url(sys, "/admin/groups/"), http.StatusOK, "groups")
		head.see("Viewer", "Can view students, Can export students")
	})

	viewer := newTab(t, sys, desktop)
	viewer.open(sch.url(sys, "/admin/login/"), http.StatusOK, "viewer-login")
	viewer.fill("#id_username", reader)
	viewer.fill("#id_password", readerPass)
	viewer.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "viewer-logged-in")
	viewer.see("Logged in as "+reader, "Wanjiru")

	t.Run("sees and exports", func(t *testing.T) {
		defer viewer.as(t)()
		viewer.open(sch.url(sys, "/admin/"), http.StatusOK, "viewer-home")
		viewer.see("Students", "View", "My actions")
		if n := viewer.count(`a[href="/admin/students/add/"], a[href^="/admin/users/"], a[href^="/admin/groups/"], a[href="/admin/settings/"]`); n != 0 {
			t.Errorf("the viewer's home links to %d pages they may not use", n)
		}
		viewer.open(sch.url(sys, "/admin/students/"), http.StatusOK, "viewer-list")
		viewer.see("Wanjiru", "Export CSV")
		viewer.dontSee("Add student", "Import CSV", "Delete selected students")
		viewer.press(`a[href^="/admin/students/`+id+`/change/"]`, http.StatusOK, "viewer-student")
		viewer.see("You may view this student but not change it.")
		if viewer.count(`button[name=_save]`) != 0 || viewer.attr(`#id_first_name`, "disabled") == "" && viewer.count(`fieldset[disabled] #id_first_name`) == 0 {
			t.Error("the viewer's student page can be edited")
		}
		csv := string(viewer.exportFromPage("/admin/students/export/"))
		if !strings.Contains(csv, "RD/1,Wanjiru,Kamau") {
			t.Errorf("the viewer's export lacks the student:\n%s", csv)
		}
	})

	t.Run("403 on every change", func(t *testing.T) {
		defer viewer.as(t)()
		for _, path := range []string{"/admin/students/add/", "/admin/students/" + id + "/delete/", "/admin/students/import/",
			"/admin/users/", "/admin/users/add/", "/admin/groups/", "/admin/settings/"} {
			viewer.open(sch.url(sys, path), http.StatusForbidden, "viewer-forbidden")
			viewer.see("Permission denied")
		}
		viewer.open(sch.url(sys, "/admin/"), http.StatusOK, "viewer-home-again")
		for _, form := range []struct{ path, body string }{
			{"/admin/students/add/", "registration_no=RD/2&first_name=X&second_name=Y"},
			{"/admin/students/" + id + "/change/", "registration_no=RD/1&first_name=Changed&second_name=Y"},
			{"/admin/students/" + id + "/delete/", ""},
			{"/admin/students/delete-selected/", "ids=" + id},
			{"/admin/students/import/", "mode=add"},
			{"/admin/users/add/", "username=mole&password1=quiet-lantern-65&password2=quiet-lantern-65&is_superuser=on"},
			{"/admin/groups/add/", "name=All&permissions=delete_student"},
			{"/admin/settings/", "public_list=staff"},
		} {
			js := fmt.Sprintf(`fetch(%s, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
				body: "csrf_token=" + encodeURIComponent(document.querySelector("input[name=csrf_token]").value) + "&" + %s}).then(r => r.status)`,
				jsString(form.path), jsString(form.body))
			if got := value(viewer, "POST "+form.path, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise)); got != http.StatusForbidden {
				t.Errorf("the viewer's POST %s: %d, want 403", form.path, got)
			}
		}
	})

	t.Run("nothing changed", func(t *testing.T) {
		defer head.as(t)()
		head.open(sch.url(sys, "/admin/students/"), http.StatusOK, "list-after")
		head.see("Wanjiru", "Kamau")
		head.dontSee("Changed", "RD/2")
		head.open(sch.url(sys, "/admin/users/"), http.StatusOK, "users-after")
		head.dontSee("mole")
		head.open(sch.url(sys, "/admin/history/"), http.StatusOK, "history-after")
		head.see("Wanjiru Kamau (RD/1)", "user reader")
	})
}
