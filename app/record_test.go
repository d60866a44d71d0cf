package app

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/campus-saas/campus/store"
)

// The add/change form carries the whole record: what is typed is saved,
// bad values are refused field by field with what was typed kept.
func TestStudentFormRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "record", envOptions{})
	b := e.browser()
	b.login()
	fields := url.Values{"registration_no": {"F-1"}, "first_name": {"Amina"}, "second_name": {"Odhiambo"},
		"class": {"Form 2B"}, "date_of_birth": {"2012-03-09"}, "gender": {"F"}, "guardian_name": {"Grace Odhiambo"},
		"guardian_phone": {"+254 712 345 678"}, "guardian_email": {"grace@example.org"}, "status": {"suspended"},
		"status_date": {"2025-02-01"}, "enrolled_on": {"2024-01-08"}, "notes": {"Asthma: inhaler in the office."}, "_save": {"1"}}
	bad := url.Values{}
	for k, v := range fields {
		bad[k] = v
	}
	bad.Set("date_of_birth", "2030-01-01")
	bad.Set("guardian_phone", "call me")
	r := b.submit("/admin/students/add/", "/admin/students/add/", bad)
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, `id="err_date_of_birth"`, "2030-01-01 is in the future", `id="err_guardian_phone"`,
		`value="Grace Odhiambo"`, "Asthma: inhaler in the office.</textarea>")
	if e.count() != 0 {
		t.Fatal("a refused form saved a student")
	}
	r = b.submit("/admin/students/add/", "/admin/students/add/", fields)
	wantCode(t, r, http.StatusSeeOther)
	pg, err := e.store.ListStudents(t.Context(), store.ListOptions{Class: "Form 2B", Status: store.StatusSuspended})
	if err != nil || len(pg.Students) != 1 {
		t.Fatalf("saved: %+v %v", pg, err)
	}
	st := pg.Students[0]
	if st.GuardianPhone != "+254 712 345 678" || st.EnrolledOn != "2024-01-08" || st.Notes != "Asthma: inhaler in the office." {
		t.Fatalf("saved %+v", st)
	}
	change := b.get(fmt.Sprintf("/admin/students/%d/change/", st.ID))
	wantBody(t, change, `value="Form 2B"`, `<option value="suspended" selected>`, `value="2012-03-09"`, `type="email"`)
}

// The public register shows what each school publishes and nothing
// else; its search never finds a student by a guardian's contacts or
// the notes; one school's choice never changes another's page.
func TestPublicFieldsPerSchool(t *testing.T) {
	t.Parallel()
	a := newEnv(t, "alpha", envOptions{})
	b := newEnv(t, "beta", envOptions{})
	in := store.StudentInput{RegistrationNo: "A-1", FirstName: "Alice", SecondName: "Alphason", Class: "Form 3C",
		GuardianName: "Gideon Guardian", GuardianPhone: "0712 999 888", Notes: "secret-note", EnrolledOn: "2023-01-09"}
	if _, err := a.store.CreateStudent(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	in.RegistrationNo, in.FirstName, in.SecondName = "B-1", "Bob", "Betason"
	if _, err := b.store.CreateStudent(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	// Default: numbers and names only.
	for _, e := range []*env{a, b} {
		r := e.browser().get("/")
		wantCode(t, r, http.StatusOK)
		wantNoBody(t, r, "Form 3C", "Gideon", "0712", "secret-note", "2023-01-09")
	}
	for _, q := range []string{"gideon", "712999888", "secret", "form 3c"} {
		r := a.browser().get("/?q=" + url.QueryEscape(q))
		wantNoBody(t, r, "Alice")
	}
	staff := a.browser()
	staff.login()
	if r := staff.get("/admin/students/?q=gideon"); true {
		wantBody(t, r, "Alice") // the admin search covers the record
	}
	p := staff.get(settingsURL)
	wantBody(t, p, `id="public_field_class"`)
	wantCode(t, staff.post(settingsURL, url.Values{"csrf_token": {csrfOf(t, p.body)}, "public_list": {"public"},
		"public_fields": {"guardian_phone"}}), http.StatusBadRequest)
	r := staff.post(settingsURL, url.Values{"csrf_token": {csrfOf(t, p.body)}, "public_list": {"public"},
		"public_fields": {"enrolled_on", "class"}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, staff.follow(r), `id="public_field_class" value="class" checked`)
	ra := a.browser().get("/")
	wantBody(t, ra, `<th scope="col">Class</th><th scope="col">Enrolment date</th>`, "<td>Form 3C</td>", "<td>2023-01-09</td>")
	wantNoBody(t, ra, "Gideon", "secret-note")
	// School B: untouched.
	rb := b.browser().get("/")
	wantBody(t, rb, "Bob")
	wantNoBody(t, rb, "Form 3C", "2023-01-09", ">Class<")
	if set, err := b.store.Settings(t.Context()); err != nil || len(set.PublicFields) != 0 {
		t.Fatalf("school B's settings %+v, %v", set, err)
	}
}
