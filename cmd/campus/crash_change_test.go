package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	ds := &devSystem{Dev: c.dev, t: t, data: c.data, proxyPort: c.dev.ProxyPort, adminAddr: c.dev.AdminAddr, mongoURI: c.dev.MongoURI}
	b := ds.browser(crashHost)
	b.c.Timeout = 3 * time.Minute // on a busy machine FerretDB is slow
	b.login("changer", pw)
	code, page, _ := b.do("GET", "/admin/students/", nil)
	if code != 200 {
		t.Fatalf("student list: %d", code)
	}
	form.Set("csrf_token", csrfToken(t, page))
	c.watch(int64(len(before))) // a change of class adds or removes no one
	seq := c.lastSeq()
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		req, err := http.NewRequest(http.MethodPost, ds.url(crashHost, "/admin/students/change-class/"), strings.NewReader(form.Encode()))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := b.c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	switch point := []string{"begun", "committed", "delay"}[c.rng.IntN(3)]; point {
	case "delay":
		delay := time.Duration(c.rng.IntN(3000)) * time.Millisecond
		t.Logf("kill point: %v after the request", delay)
		time.Sleep(delay) // the kill point: random by design, recorded in the seed
	default:
		t.Logf("kill point: %s", point)
		c.waitPoint(point, seq, posted)
	}
	c.stopWatch()
	c.killDev()
	<-posted
	c.start()
	if err := c.dev.WaitStatus(t.Context(), crashHost, "/", 200); err != nil {
		t.Fatal(err)
	}
	ds = &devSystem{Dev: c.dev, t: t, data: c.data, proxyPort: c.dev.ProxyPort, adminAddr: c.dev.AdminAddr, mongoURI: c.dev.MongoURI}
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
