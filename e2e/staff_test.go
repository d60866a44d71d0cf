package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The staff of a school, in a real browser: a superuser adds a staff
// member, who logs in, manages students and cannot manage users (403 from
// the server, not only hidden links); the staff member changes their
// password (another session of theirs ends); a superuser issues a reset
// link, used once and refused twice after; the admin home lists recent
// actions and a student's history shows who changed what.
func TestStaffPasswordsAndHistory(t *testing.T) {
	sys := system(t)
	sch := school{"staffroom", sys.createTenant(t, "staffroom", "Staffroom Academy")}
	const (
		clerk      = "clerk"
		clerkPass  = "clerk-first-pass-1"
		clerkPass2 = "clerk-second-pass-2"
		clerkPass3 = "clerk-reset-pass-3"
	)

	head := newTab(t, sys, desktop)
	head.login(sys, sch)

	t.Run("superuser adds a staff member", func(t *testing.T) {
		defer head.as(t)()
		head.open(sch.url(sys, "/admin/"), http.StatusOK, "home-superuser")
		head.see("Site administration", "Students", "Users", "Recent actions")
		head.audit("admin home")
		head.press(`#manage a[href="/admin/users/add/"]`, http.StatusOK, "user-add-form")
		head.audit("user add form")
		head.fill("#id_username", clerk)
		head.fill("#id_email", "clerk@staffroom.example")
		head.fill("#id_password1", clerkPass)
		head.fill("#id_password2", clerkPass+"x")
		head.press(`button[name=_save]`, http.StatusUnprocessableEntity, "user-add-mismatch")
		head.see("The two password fields didn’t match.")
		head.fill("#id_password1", clerkPass)
		head.fill("#id_password2", clerkPass)
		head.press(`button[name=_save]`, http.StatusOK, "user-added")
		head.see("The user “clerk” was added successfully.")
		if users := head.textOf("#users"); !strings.Contains(users, "clerk\tclerk@staffroom.example\tstaff") {
			t.Errorf("the users list does not show clerk as staff:\n%s", users)
		}
	})

	staff := newTab(t, sys, desktop)
	staffLogin := func(b *tab, password, shot string) {
		b.t.Helper()
		b.open(sch.url(sys, "/admin/login/"), http.StatusOK, shot+"-login")
		b.fill("#id_username", clerk)
		b.fill("#id_password", password)
		b.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, shot)
		b.see("Logged in as " + clerk)
	}
	staffLogin(staff, clerkPass, "staff-logged-in")

	t.Run("staff manage students, not users", func(t *testing.T) {
		defer staff.as(t)()
		staff.open(sch.url(sys, "/admin/"), http.StatusOK, "home-staff")
		staff.see("Students", "My actions")
		if n := staff.count(`a[href^="/admin/users/"]`); n != 0 {
			t.Errorf("staff see %d links to users", n)
		}
		for _, path := range []string{"/admin/users/", "/admin/users/add/"} {
			staff.open(sch.url(sys, path), http.StatusForbidden, "staff-forbidden")
			staff.see("Permission denied", "Only superusers can manage users, groups and site settings.")
		}
		staff.addStudent(sys, sch, student{"STF/1", "Zoe", "Achieng"}, "_continue")
		staff.fill("#id_first_name", "Zoë")
		staff.press(`button[name=_continue]`, http.StatusOK, "student-changed")
		staff.see("was changed successfully")
	})

	t.Run("change own password", func(t *testing.T) {
		defer staff.as(t)()
		other := newTab(t, sys, desktop) // a second session of the clerk
		defer other.as(t)()
		staffLogin(other, clerkPass, "second-session")

		staff.open(sch.url(sys, "/admin/"), http.StatusOK, "before-password")
		staff.press(`header a[href="/admin/password/"]`, http.StatusOK, "password-form")
		staff.audit("password change form")
		staff.fill("#id_old_password", "not-my-password")
		staff.fill("#id_new_password1", clerkPass2)
		staff.fill("#id_new_password2", clerkPass2)
		staff.press(`form[action="/admin/password/"] button[type=submit]`, http.StatusUnprocessableEntity, "password-wrong-old")
		staff.see("Your old password was entered incorrectly.")
		staff.fill("#id_old_password", clerkPass)
		staff.fill("#id_new_password1", "12345678")
		staff.fill("#id_new_password2", "12345678")
		staff.press(`form[action="/admin/password/"] button[type=submit]`, http.StatusUnprocessableEntity, "password-weak")
		staff.see("This password is too common.", "This password is entirely numeric.")
		staff.fill("#id_old_password", clerkPass)
		staff.fill("#id_new_password1", clerkPass2)
		staff.fill("#id_new_password2", clerkPass2)
		staff.press(`form[action="/admin/password/"] button[type=submit]`, http.StatusOK, "password-changed")
		staff.see("Your password was changed.", "Logged in as "+clerk)
		// This session continues; the other one has ended.
		staff.open(sch.url(sys, "/admin/students/"), http.StatusOK, "still-logged-in")
		staff.see("Logged in as " + clerk)
		other.open(sch.url(sys, "/admin/students/"), http.StatusOK, "other-session-ended")
		other.see("Log in")
		other.dontSee("Logged in as")
	})

	t.Run("reset link used once, refused twice", func(t *testing.T) {
		defer head.as(t)()
		head.open(sch.url(sys, "/admin/users/"), http.StatusOK, "users-list")
		head.press(`#users a[href$="/change/"]:not([href*="head-"])`, http.StatusOK, "user-change")
		head.see("Change user", clerk)
		head.press("#issue-reset-link", http.StatusOK, "reset-link-issued")
		link := head.attr("#reset-link", "value")
		u, err := url.Parse(link)
		if err != nil || u.Host != sch.host+":"+sys.proxyPort || u.Path != "/admin/password-reset/" {
			t.Fatalf("reset link %q: want it on %s:%s", link, sch.host, sys.proxyPort)
		}

		person := newTab(t, sys, desktop)
		defer person.as(t)()
		late := newTab(t, sys, desktop) // opened the link too, submits after
		defer late.as(t)()
		late.open(link, http.StatusOK, "late-form")

		person.open(link, http.StatusOK, "reset-form")
		person.audit("reset form")
		person.see("Set a new password", clerk)
		person.fill("#id_new_password1", clerkPass3)
		person.fill("#id_new_password2", clerkPass3)
		person.press(`form[action="/admin/password-reset/"] button[type=submit]`, http.StatusOK, "reset-done")
		person.see("Your password has been set. You may log in now.")
		person.fill("#id_username", clerk)
		person.fill("#id_password", clerkPass3)
		person.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "login-after-reset")
		person.see("Logged in as " + clerk)

		// Refused: the form opened before, submitted after; and the link
		// opened again.
		late.fill("#id_new_password1", "attacker-pass-99")
		late.fill("#id_new_password2", "attacker-pass-99")
		late.press(`form[action="/admin/password-reset/"] button[type=submit]`, http.StatusGone, "reset-refused-late")
		late.see("invalid, has expired or has already been used")
		late.open(link, http.StatusGone, "reset-refused-again")
		late.see("invalid, has expired or has already been used")
		if late.count("#id_new_password1") != 0 {
			t.Error("a used link still shows the form")
		}
		// The clerk's old session ended with the reset.
		staff.open(sch.url(sys, "/admin/students/"), http.StatusOK, "session-ended-by-reset")
		staff.see("Log in")
	})

	t.Run("recent actions and student history", func(t *testing.T) {
		defer head.as(t)()
		head.open(sch.url(sys, "/admin/"), http.StatusOK, "home-recent")
		recent := head.textOf("#recent-actions")
		for _, want := range []string{"Changed", "Zoë Achieng (STF/1)", "Added", clerk, "Reset link issued", "user clerk"} {
			if !strings.Contains(recent, want) {
				t.Errorf("recent actions lack %q:\n%s", want, recent)
			}
		}
		defer staff.as(t)()
		staffLogin(staff, clerkPass3, "staff-again") // the reset ended its session
		staff.open(sch.url(sys, "/admin/"), http.StatusOK, "home-recent-staff")
		staff.see("Zoë Achieng (STF/1)")
		staff.dontSee("user clerk", "Reset link issued")
		head.press(`#recent-actions a[href^="/admin/students/"]`, http.StatusOK, "student-from-recent")
		head.press(`#history-link`, http.StatusOK, "student-history")
		head.audit("student history")
		head.see("Change history", "Zoë Achieng (STF/1)", "Added", "Changed", clerk, "First name: Zoe → Zoë")
	})
}
