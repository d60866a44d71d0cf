package main

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/campus-saas/campus/store"
)

// crashBulkChange kills campus dev (its database, and with it the app
// doing the change) during a bulk change of class from the list's actions
// menu (store.ChangeStudents, one operation): once it is begun, once
// committed, or after a random delay. The register is then the one before
// or the one after, never a part; a change rolled back is made again.
func (c *crashSystem) crashBulkChange(t *testing.T) {
	c.t = t
	pw := "long-enough-pw"
	cmd := c.dev.Command(t.Context(), "manage", "nairobi", "createsuperuser", "--username", "changer", "--noinput")
	cmd.Env = append(cmd.Env, "CAMPUS_SUPERUSER_PASSWORD="+pw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("createsuperuser: %v\n%s", err, out)
	}
	before := c.register()
	st := store.New(c.db, store.Options{})
	// 25 students: each change is one write matched on the values read,
	// which FerretDB finds by a pass over the school (~2 s each at the
	// test's 33,000 students on a busy machine: 100 took 228 s; 1,000
	// outlasted the proxy's upstream timeout). The kill lands before,
	// during or after.
	pg, err := st.ListStudents(t.Context(), store.ListOptions{PerPage: 25})
	if err != nil {
		t.Fatal(err)
	}
	const class = "Form 4C"
	form := url.Values{"confirm": {"yes"}, "class": {class}}
	changed := map[string]bool{}
	for _, s := range pg.Students {
		form.Add("ids", strconv.FormatInt(s.ID, 10))
		changed[s.RegistrationNo+","+s.FirstName+","+s.SecondName] = true
	}
	var after []string
	for _, l := range before {
		if changed[l] { // the register's line of a student with a class
			l += "," + class + ",,,,,,enrolled,,,"
		}
		after = append(after, l)
	}
	slices.Sort(after)
	c.killDuringPost(t, "changer", pw, "/admin/students/change-class/", form, int64(len(before))) // a change of class adds or removes no one
	// The app's start rolls back (or the next writer does); the register
	// is all or nothing of the change meanwhile.
	complete := c.checkNoneOrAll(before, after)
	t.Logf("after the kill: %s", map[bool]string{true: "all", false: "none"}[complete])
	c.appAgrees(len(before))
	if !complete {
		// The same change again, through the store (as the app makes it;
		// on a busy machine it can outlast the proxy's upstream timeout).
		st := store.New(c.db, store.Options{QueryTimeout: 5 * time.Minute, BulkTimeout: 10 * time.Minute})
		defer st.Close(context.Background())
		ids := make([]int64, len(pg.Students))
		for i, s := range pg.Students {
			ids[i] = s.ID
		}
		if n, err := st.ChangeStudents(t.Context(), ids, store.StudentsChange{SetClass: true, Class: class}, store.CommandLine); err != nil || n != int64(len(ids)) {
			t.Fatalf("the same bulk change again: %d changed, %v", n, err)
		}
	}
	if got := c.register(); !slices.Equal(got, after) {
		t.Fatalf("after the bulk change: %d students, want %d of class %s", len(got), len(after), class)
	}
}
