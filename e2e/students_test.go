package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// school is one tenant as a visitor reaches it.
type school struct {
	tenant string
	host   string
}

func (s school) url(sys *devSystem, path string) string { return sys.url(s.host, path) }

var (
	nairobi = school{"nairobi", "nairobi.school.localhost"}
	accra   = school{"accra", "accra.school.localhost"}
)

// student is what the forms ask for.
type student struct{ regNo, first, second string }

func (s student) label() string { return s.first + " " + s.second + " (" + s.regNo + ")" }

// login signs in to a school's admin site through the login form.
func (b *tab) login(sys *devSystem, s school) {
	b.t.Helper()
	b.open(s.url(sys, "/admin/"), http.StatusOK, s.tenant+"-login-page")
	b.see("Log in", "Username", "Password")
	b.fill("#id_username", adminUser(s.tenant))
	b.fill("#id_password", adminPassword)
	b.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, s.tenant+"-logged-in")
	b.see("Logged in as "+adminUser(s.tenant), "Students")
}

// addStudent fills the add form and saves with the named button.
func (b *tab) addStudent(sys *devSystem, s school, st student, button string) {
	b.t.Helper()
	b.open(s.url(sys, "/admin/students/add/"), http.StatusOK, "add-form")
	b.fill("#id_registration_no", st.regNo)
	b.fill("#id_first_name", st.first)
	b.fill("#id_second_name", st.second)
	b.press(`button[name=`+button+`]`, http.StatusOK, "added-"+st.regNo)
	if got, want := b.textOf("#flash"), "The student “"+st.label()+"” was added successfully."; got != want {
		b.t.Errorf("after adding: message %q, want %q", got, want)
	}
}

// searchPublic searches the school's public page.
func (b *tab) searchPublic(sys *devSystem, s school, q, shot string) {
	b.t.Helper()
	b.open(s.url(sys, "/"), http.StatusOK, shot+"-public")
	b.fill("#q", q)
	b.press(`form[role=search] button[type=submit]`, http.StatusOK, shot)
}

// TestStudentLifecycle is a school administrator's day, in a real browser,
// at two schools: log in, add a student (and see the form's errors first),
// find the student on the public page and by search, change, delete after
// the confirmation page, log out. Nairobi's students are never visible at
// Accra, on any page visited there.
func TestStudentLifecycle(t *testing.T) {
	sys := system(t)
	b := newTab(t, sys, desktop)

	kept := student{"NRB/E2E/KEEP", "Nyokabi", "Wambui"}
	cases := []struct {
		school    school
		st        student
		renamed   string
		forbidden []string // other schools' data, never to be shown
	}{
		{nairobi, student{"NRB/E2E/001", "Wanjiru", "Kamau"}, "Wanjiku", nil},
		{accra, student{"ACC/E2E/001", "Kwame", "Mensah"}, "Kwabena", []string{kept.regNo, kept.first, kept.second, "NRB/", "Wanjiru", "Wanjiku"}},
	}
	for _, c := range cases {
		t.Run(c.school.tenant, func(t *testing.T) {
			defer b.as(t)()
			b.forbidden = c.forbidden
			defer func() { b.forbidden = nil }()
			st := c.st
			b.login(sys, c.school)

			// The form's errors are next to the fields, tied to them for
			// screen readers, and the first bad field has the focus.
			b.open(c.school.url(sys, "/admin/students/add/"), http.StatusOK, "add-form-empty")
			b.fill("#id_first_name", st.first)
			b.press(`button[name=_save]`, http.StatusUnprocessableEntity, "add-form-errors")
			b.see("Please correct the errors below.", "This field is required.")
			for _, f := range []string{"registration_no", "second_name"} {
				in := "#id_" + f
				if cls := b.attr(in, "class"); !strings.Contains(cls, "is-invalid") {
					t.Errorf("%s: class %q lacks is-invalid", in, cls)
				}
				if d := b.attr(in, "aria-describedby"); !strings.Contains(d, "err_"+f) {
					t.Errorf("%s: aria-describedby %q does not name its error", in, d)
				}
				if b.attr(in, "aria-invalid") != "true" {
					t.Errorf("%s: not aria-invalid", in)
				}
				if msg := b.textOf("#err_" + f); msg != "This field is required." {
					t.Errorf("error next to %s: %q", in, msg)
				}
			}
			if b.attr("#id_first_name", "aria-invalid") != "" {
				t.Error("the valid field is marked invalid")
			}
			if v := b.attr("#id_first_name", "value"); v != st.first {
				t.Errorf("the form lost what was typed: first name %q, want %q", v, st.first)
			}
			if got := b.activeID(); got != "id_registration_no" {
				t.Errorf("focus on %q after a failed save, want the first bad field", got)
			}

			if c.school == nairobi {
				// A student that stays while Accra is visited.
				b.addStudent(sys, c.school, kept, "_addanother")
				b.see("Add student") // "Save and add another" comes back to the form
			}
			b.addStudent(sys, c.school, st, "_save")
			b.see("Students", st.regNo, st.first, st.second)

			// The public page lists the student; search finds them.
			b.open(c.school.url(sys, "/"), http.StatusOK, "public")
			if table := b.textOf("#students"); !strings.Contains(table, st.first) || !strings.Contains(table, st.regNo) {
				t.Errorf("public table lacks %s:\n%s", st.label(), table)
			}
			b.searchPublic(sys, c.school, st.second, "public-search")
			b.see("Students matching “"+st.second+"”", st.regNo)
			if n := b.count("#students tbody tr"); n != 1 {
				t.Errorf("search for %q: %d rows, want 1", st.second, n)
			}
			b.searchPublic(sys, c.school, "Zzyzx", "public-search-none")
			b.see("No students match “Zzyzx”.")

			// Change: find the student with the admin search, rename.
			b.open(c.school.url(sys, "/admin/students/?q="+st.regNo), http.StatusOK, "admin-search")
			b.press(`#changelist tbody a`, http.StatusOK, "change-form")
			b.see("Change student", st.label())
			b.fill("#id_first_name", c.renamed)
			b.press(`button[name=_save]`, http.StatusOK, "changed")
			renamed := student{st.regNo, c.renamed, st.second}
			if got, want := b.textOf("#flash"), "The student “"+renamed.label()+"” was changed successfully."; got != want {
				t.Errorf("after changing: %q, want %q", got, want)
			}
			b.open(c.school.url(sys, "/"), http.StatusOK, "public-after-change")
			b.see(c.renamed)
			b.dontSee(st.first)

			// Delete, after the confirmation page; "No" deletes nothing.
			b.open(c.school.url(sys, "/admin/students/?q="+st.regNo), http.StatusOK, "admin-search-again")
			b.press(`#changelist tbody a`, http.StatusOK, "change-form-again")
			b.press(`a.btn-outline-danger`, http.StatusOK, "delete-confirm")
			b.see("Are you sure?", renamed.label(), "This cannot be undone.")
			b.press(`form[action$="/delete/"] a.btn-outline-secondary`, http.StatusOK, "delete-cancelled")
			b.see("Change student", renamed.label())
			b.press(`a.btn-outline-danger`, http.StatusOK, "delete-confirm-again")
			b.press(`form[action$="/delete/"] button.btn-danger`, http.StatusOK, "deleted")
			if got, want := b.textOf("#flash"), "The student “"+renamed.label()+"” was deleted successfully."; got != want {
				t.Errorf("after deleting: %q, want %q", got, want)
			}
			b.open(c.school.url(sys, "/"), http.StatusOK, "public-after-delete")
			b.dontSee(st.regNo, c.renamed)

			if c.school == accra {
				// Looking for Nairobi's student at Accra finds nothing (the
				// search box shows what was typed, so these two pages are
				// checked for the result only).
				b.forbidden = nil
				b.searchPublic(sys, c.school, kept.first, "public-search-other-school")
				b.see("No students match “" + kept.first + "”.")
				b.open(c.school.url(sys, "/admin/students/?q="+kept.regNo), http.StatusOK, "admin-search-other-school")
				b.see("No students match")
				b.dontSee(kept.first + " ")
				b.forbidden = c.forbidden
			} else {
				b.see(kept.regNo, kept.first)
			}

			// Log out: the admin pages ask for a login again.
			b.open(c.school.url(sys, "/admin/"), http.StatusOK, "admin-before-logout")
			b.press(`form[action="/admin/logout/"] button`, http.StatusOK, "logged-out")
			b.see("You have been logged out.", "Log in")
			b.open(c.school.url(sys, "/admin/students/"), http.StatusOK, "after-logout")
			b.see("Log in")
			b.dontSee("Logged in as", "Add student")
		})
	}
}
