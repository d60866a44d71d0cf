package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/store"
)

var progressRE = regexp.MustCompile(`^/admin/students/import/([0-9]+)/progress/$`)

// awaitImport follows a confirmation's 303 to its progress page and polls
// it until the import has ended; it returns the last page.
func awaitImport(t *testing.T, b *browser, confirmed response) response {
	t.Helper()
	wantCode(t, confirmed, http.StatusSeeOther)
	loc := confirmed.location()
	if !progressRE.MatchString(loc) {
		t.Fatalf("the confirmation went to %q, not a progress page", loc)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		r := b.get(loc)
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, `id="import-progress"`) {
			if strings.Contains(r.body, `http-equiv="refresh"`) {
				t.Fatal("a finished import's page refreshes itself")
			}
			return r
		}
		if !strings.Contains(r.body, `http-equiv="refresh"`) {
			t.Fatal("a running import's page does not refresh itself")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import still runs after 2 minutes:\n%s", r.body)
		}
		time.Sleep(50 * time.Millisecond) // polling, not deciding
	}
}

func opOf(t *testing.T, r response) int64 {
	t.Helper()
	m := progressRE.FindStringSubmatch(r.location())
	if m == nil {
		t.Fatalf("%d to %q, want a progress page", r.code, r.location())
	}
	var op int64
	fmt.Sscan(m[1], &op)
	return op
}

func csvRows(prefix string, n int) string {
	var sb strings.Builder
	sb.WriteString("registration_no,first_name,second_name\n")
	for i := range n {
		fmt.Fprintf(&sb, "%s-%05d,Ama,Owusu\n", prefix, i)
	}
	return sb.String()
}

// TestImportInBackground: the confirmation answers 303 to the import's
// progress page at once; the page shows the rows written while it runs
// (refreshing itself) and the summary at the end; the import was done
// after the request ended. A second confirmation of the same plan (double
// click, reload) imports nothing more: it is sent to the same page, also
// when both arrive together.
func TestImportInBackground(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	r := uploadCSV(t, b, "add", csvRows("BG", 300))
	wantCode(t, r, http.StatusOK)

	// Two confirmations of the same preview at once, then a third after.
	var wg sync.WaitGroup
	answers := make([]response, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = confirmImport(t, b, r)
		}()
	}
	wg.Wait()
	op := opOf(t, answers[0])
	if op2 := opOf(t, answers[1]); op2 != op {
		t.Fatalf("two confirmations of one plan started imports %d and %d", op, op2)
	}
	done := awaitImport(t, b, answers[0])
	wantBody(t, done, "Successfully imported 300 students.", `id="import-done"`)
	if again := confirmImport(t, b, r); opOf(t, again) != op {
		t.Fatalf("the confirmation sent again went to %q", again.location())
	}
	if n := e.count(); n != 300 {
		t.Fatalf("%d students, want 300 (imported once)", n)
	}
	// After a restart (a new app over the same database, nothing in
	// memory) the page reads the operation record.
	e2 := e.restart()
	b2 := e2.browser()
	b2.login()
	wantBody(t, b2.get(importProgressURL(op)), "Successfully imported 300 students.")
	if r := b2.get(importProgressURL(op + 1000)); r.code != http.StatusNotFound {
		t.Fatalf("an import that never was: %d", r.code)
	}
}

// TestImportFailureShown: an import that rolls back in the background
// (here cancelled right after it started, as a shutdown does) ends on a
// page that says nothing was imported, also after a restart, where it
// names the roll-back's history entry.
func TestImportFailureShown(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	e.app.importStarted = func(run *store.ImportRun) { run.Cancel() }
	r := uploadCSV(t, b, "add", csvRows("F", 2000))
	c := confirmImport(t, b, r)
	op := opOf(t, c)
	done := awaitImport(t, b, c)
	wantBody(t, done, `id="import-failed"`, "Nothing was imported", "Upload the file again")
	if n := e.count(); n != 0 {
		t.Fatalf("%d students after a failed import", n)
	}
	b2 := e.restart().browser()
	b2.login()
	wantBody(t, b2.get(importProgressURL(op)), "rolled back", "nothing imported", `href="/admin/history/"`)
}

// TestImportProgressCrossTenant: school B's user cannot see school A's
// import (A's session is not B's, and A's op number at B is B's own
// operation or 404), and a user without the import right sees none.
func TestImportProgressCrossTenant(t *testing.T) {
	a, bEnv := newEnv(t, "alpha", envOptions{}), newEnv(t, "beta", envOptions{})
	ab := a.browser()
	ab.login()
	c := confirmImport(t, ab, uploadCSV(t, ab, "add", csvRows("A", 20)))
	op := opOf(t, c)
	wantBody(t, awaitImport(t, ab, c), "Successfully imported 20 students.")

	bb := bEnv.browser()
	bb.login()
	r := bb.get(importProgressURL(op))
	wantCode(t, r, http.StatusNotFound)
	wantNoBody(t, r, "20 students")
	// B's own import with the same number is B's.
	bc := confirmImport(t, bb, uploadCSV(t, bb, "add", csvRows("B", 3)))
	if opOf(t, bc) != op {
		t.Fatalf("B's first import is %d, A's %d: the numbers are per school", opOf(t, bc), op)
	}
	wantBody(t, awaitImport(t, bb, bc), "Successfully imported 3 students.")
	wantNoBody(t, bb.get(importProgressURL(op)), "20 students")
	// A's session cookie sent to B's host is not a session there.
	stolen := bEnv.browser()
	stolen.setCookie(sessionCookie, ab.cookie(sessionCookie))
	if r := stolen.get(importProgressURL(op)); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("A's session at B: %d %q, want the login", r.code, r.location())
	}
	// Within A: a user without the import right is refused.
	ctx := context.Background()
	viewers, err := a.store.CreateGroup(ctx, "Viewers", []store.Permission{store.PermView})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx, store.NewUser{Username: "viewer", Password: "a-long-unusual-pw-93", Groups: []string{viewers.ID}}); err != nil {
		t.Fatal(err)
	}
	v := a.browser()
	v.tryLogin("viewer", "a-long-unusual-pw-93")
	if r := v.get(importProgressURL(op)); r.code != http.StatusForbidden {
		t.Fatalf("a user without the import right: %d", r.code)
	}
}

// restart is a new app over e's database: nothing of e's app in memory.
func (e *env) restart() *env {
	e.t.Helper()
	app, err := newServer(Config{Tenant: e.tenant, Store: e.store, Logger: e.app.log, Registerer: prometheus.NewRegistry(), Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(app.routes())
	e.t.Cleanup(srv.Close)
	e2 := *e
	e2.srv, e2.app = srv, app
	return &e2
}
