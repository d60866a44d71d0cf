package app

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/store"
)

// Issue 27 (6): /admin/history/ filters by who, action and dates, pages,
// and exports the same selection as CSV; anyone but a superuser sees
// only their own actions there and on the home page ("My actions").
func TestHistoryPage(t *testing.T) {
	re := newRightsEnv(t, "annals")
	ctx := context.Background()
	staff, _ := re.as(t, "staffer")
	// The staffer adds 3 students on 1 March; the boss changes one on
	// 3 March and adds a group.
	for _, n := range []string{"1", "2", "3"} {
		r := staff.submit("/admin/students/add/", "/admin/students/add/", url.Values{
			"registration_no": {"H-" + n}, "first_name": {"Hana" + n}, "second_name": {"Hist"}})
		wantCode(t, r, http.StatusSeeOther)
	}
	re.clock.Add(48 * time.Hour) // sessions last 8 hours: new ones
	staff, _ = re.as(t, "staffer")
	boss, _ := re.as(t, "boss")
	r := boss.submit(changeURL(re.studentID), changeURL(re.studentID), url.Values{
		"registration_no": {"R-1"}, "first_name": {"Rita"}, "second_name": {"Changed"}})
	wantCode(t, r, http.StatusSeeOther)
	wantCode(t, boss.submit("/admin/groups/add/", "/admin/groups/add/", url.Values{"name": {"Auditors"}, "permissions": {"view_student"}}), http.StatusSeeOther)

	all := boss.get("/admin/history/")
	wantCode(t, all, http.StatusOK)
	wantBody(t, all, "5 entries", "Hana1 Hist (H-1)", "Rita Changed (R-1)", "group Auditors", `<option>staffer</option>`)
	for _, tc := range []struct {
		query      string
		want, lack []string
	}{
		{"?user=staffer", []string{"3 entries", "Hana3"}, []string{"Rita Changed", "Auditors"}},
		{"?user=STAFFER", []string{"3 entries"}, nil},
		{"?action=change", []string{"1 entry", "Rita Changed"}, []string{"Hana1"}},
		{"?from=2025-03-02", []string{"2 entries", "Auditors"}, []string{"Hana1"}},
		{"?until=2025-03-01", []string{"3 entries", "Hana2"}, []string{"Rita Changed"}},
		{"?from=2025-03-01&until=2025-03-01&action=add", []string{"3 entries"}, nil},
		{"?user=nobody-at-all", []string{"No actions match."}, nil},
	} {
		r := boss.get("/admin/history/" + tc.query)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, tc.want...)
		wantNoBody(t, r, tc.lack...)
	}
	// Bad input: a clear error, nothing lost.
	r = boss.get("/admin/history/?from=1%20March&action=drop")
	wantCode(t, r, http.StatusBadRequest)
	wantBody(t, r, "Enter a date as YYYY-MM-DD.", "Choose an action from the list.")
	r = boss.get("/admin/history/?from=2025-03-05&until=2025-03-01")
	wantBody(t, r, "The end date is before the start date.")

	// The staffer sees their own actions only, whatever the query says.
	own := staff.get("/admin/history/?user=boss")
	wantCode(t, own, http.StatusOK)
	wantBody(t, own, "My actions", "3 entries", "Hana2")
	wantNoBody(t, own, "Rita Changed", "Auditors", `id="id_user"`)
	home := staff.get("/admin/")
	wantBody(t, home, "My actions", "Hana3")
	wantNoBody(t, home, "Rita Changed")
	wantBody(t, boss.get("/admin/"), "Recent actions", "Rita Changed", "group Auditors")

	// CSV export of the selection, oldest first.
	exp := boss.get("/admin/history/export/?user=staffer")
	wantCode(t, exp, http.StatusOK)
	if ct := exp.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("export Content-Type %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(exp.body)).ReadAll()
	if err != nil || len(rows) != 4 || rows[1][1] != "staffer" || !strings.Contains(rows[1][4], "Hana1") {
		t.Fatalf("export: %v\n%q", err, rows)
	}
	mine := staff.get("/admin/history/export/?user=boss")
	if strings.Contains(mine.body, "Rita Changed") || strings.Count(mine.body, "\n") != 4 {
		t.Fatalf("the staffer's export holds others' actions:\n%s", mine.body)
	}

	// Pages of 50.
	for i := 0; i < 60; i++ {
		if err := re.store.RecordHistory(ctx, store.StudentAdded(store.Actor{Username: "bulk"}, store.Student{ID: int64(1000 + i), RegistrationNo: "B", FirstName: "Bulk", SecondName: "Entry"})); err != nil {
			t.Fatal(err)
		}
	}
	p1 := boss.get("/admin/history/?user=bulk")
	// Counted (MongoDB), or not: FerretDB reads only up to the next page.
	if !strings.Contains(p1.body, "60 entries, showing 1–50") {
		wantBody(t, p1, "Entries 1–50, newest first; there are more (not counted")
	}
	wantBody(t, p1, `href="/admin/history/?page=2&amp;user=bulk"`)
	p2 := boss.get("/admin/history/?user=bulk&page=2")
	wantBody(t, p2, "60 entries, showing 51–60") // the end: counted
	// A page past the end (a stale link) shows the last one.
	wantBody(t, boss.get("/admin/history/?user=bulk&page=99"), "showing 51–60", "Entry")
}

// Issue 27 (5): a superuser sets another user's password; every problem
// of a bad one is shown at once; the user's sessions end; history says
// who (and never the password).
func TestSuperuserSetsPassword(t *testing.T) {
	re := newRightsEnv(t, "setpw")
	boss, _ := re.as(t, "boss")
	victimSession, _ := re.as(t, "staffer")
	id := re.users["staffer"].ID
	page := userPasswordURL(id)
	wantBody(t, boss.get(userChangeURL(id)), `href="/admin/users/`+id+`/password/"`)

	r := boss.submit(page, page, url.Values{"password1": {"1234"}, "password2": {"12345"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, msgPasswordMismatch, "This password is too short.", "This password is too common.", "This password is entirely numeric.")
	r = boss.submit(page, page, url.Values{"password1": {"staffer-1"}, "password2": {"staffer-1"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "The password is too similar to the username.")

	const newPW = "quiet-orchard-58"
	r = boss.submit(page, page, url.Values{"password1": {newPW}, "password2": {newPW}})
	wantCode(t, r, http.StatusSeeOther)
	wantBody(t, boss.follow(r), "The password of “staffer” was changed.")
	if r := victimSession.get("/admin/"); r.code != http.StatusSeeOther {
		t.Fatalf("the user's session survived a new password: %d", r.code)
	}
	if _, err := re.store.Authenticate(context.Background(), "staffer", newPW, "192.0.2.40"); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	hist := boss.get("/admin/history/?action=password_set")
	wantBody(t, hist, "1 entry", "user staffer", "boss")
	wantNoBody(t, hist, newPW)
}

// Issue 27 (5): the own-password form shows every error at once.
func TestPasswordFormEveryErrorAtOnce(t *testing.T) {
	e := newEnv(t, "allatonce", envOptions{})
	b := e.browser()
	b.login()
	r := b.submit(passwordURL, passwordURL, url.Values{"new_password1": {"admin"}, "new_password2": {"admin2"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, msgRequired, msgPasswordMismatch, "This password is too short.", "This password is too common.",
		"The password is too similar to the username.")
}
