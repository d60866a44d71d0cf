package control_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/campus-saas/campus/control"
	"github.com/campus-saas/campus/registry"
)

// browser is one logged-in console user.
type browser struct {
	t      *testing.T
	w      *world
	cookie *http.Cookie
	csrf   string
}

func (w *world) browser(token string) *browser {
	w.t.Helper()
	b := &browser{t: w.t, w: w, cookie: consoleLogin(w.t, w, token)}
	_, page := b.get(control.ConsolePrefix)
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		w.t.Fatalf("no CSRF token on the schools page:\n%s", page)
	}
	b.csrf = m[1]
	return b
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.w.srv.URL+path, nil)
	req.AddCookie(b.cookie)
	resp, err := noRedirect(b.w).Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.w.noSecrets("console "+path, body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.w.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(b.cookie)
	resp, err := noRedirect(b.w).Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *browser) form(kv ...string) url.Values {
	v := url.Values{"csrf_token": {b.csrf}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestConsole(t *testing.T) {
	w := newEmbedded(t)
	b := w.browser(w.rw)
	n := w.name()

	// Create through the form: the invite link is shown once.
	code, page, _ := b.post(control.ConsolePrefix+"schools", b.form("name", n, "hosts", n+".school.localhost", "superuser", "headmaster", "email", "head-of-school@example.org"))
	if code != http.StatusCreated || !strings.Contains(page, "/admin/password-reset/?token=") {
		t.Fatalf("create: %d\n%s", code, page)
	}
	if e := w.lastAudit(); e.Action != "schools.create" || e.Target != n || e.Outcome != registry.OutcomeOK {
		t.Errorf("audit of the console's create: %+v", e)
	}
	if code, page, _ := b.post(control.ConsolePrefix+"schools", b.form("name", n, "hosts", "other."+n+".localhost", "superuser", "x1", "email", "x@example.org")); code != http.StatusConflict || !strings.Contains(page, "alert-danger") {
		t.Errorf("create of a taken name: %d", code)
	}

	// The table, with a sparkline per school, and the school's page.
	code, page = b.get(control.ConsolePrefix)
	if code != http.StatusOK || !strings.Contains(page, `href="/console/schools/`+n+`"`) || !strings.Contains(page, "<svg class=\"sparkline\"") {
		t.Fatalf("schools page: %d\n%s", code, page)
	}
	if !strings.Contains(page, "/console/static/bootstrap.min.css?v=") {
		t.Error("the console does not use the admin's CSS")
	}
	if code, _ := b.get(control.ConsolePrefix + "static/app.css"); code != http.StatusOK {
		t.Errorf("static CSS: %d", code)
	}
	code, page = b.get(control.ConsolePrefix + "schools/" + n)
	if code != http.StatusOK || !strings.Contains(page, "Suspend") || !strings.Contains(page, "schools.create") {
		t.Fatalf("school page: %d\n%s", code, page)
	}

	// Actions need the session's CSRF token.
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/suspend", url.Values{"csrf_token": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("suspend without the CSRF token: %d", code)
	}
	if tn, _ := w.reg.Tenant(t.Context(), n); tn.State != registry.StateActive {
		t.Fatalf("a forged form suspended the school")
	}
	if code, _, loc := b.post(control.ConsolePrefix+"schools/"+n+"/suspend", b.form()); code != http.StatusSeeOther || !strings.HasSuffix(loc, "?done=suspended") {
		t.Errorf("suspend: %d → %s", code, loc)
	}
	if tn, _ := w.reg.Tenant(t.Context(), n); tn.State != registry.StateSuspended {
		t.Errorf("after suspend: %s", tn.State)
	}
	b.post(control.ConsolePrefix+"schools/"+n+"/resume", b.form())

	// Settings and hosts.
	if code, _, loc := b.post(control.ConsolePrefix+"schools/"+n+"/set", b.form("idle_timeout", "5m", "memory", "768MiB")); code != http.StatusSeeOther || !strings.Contains(loc, "done=settings") {
		t.Errorf("set: %d → %s", code, loc)
	}
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/set", b.form("idle_timeout", "1m", "memory", "lots")); code != http.StatusUnprocessableEntity {
		t.Errorf("set a bad memory: %d", code)
	}
	if tn, _ := w.reg.Tenant(t.Context(), n); tn.IdleTimeout != "5m0s" || tn.Memory != "768MiB" {
		t.Errorf("after set: %q %q", tn.IdleTimeout, tn.Memory)
	}
	extra := "records." + n + ".example"
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/hosts", b.form("host", extra)); code != http.StatusSeeOther {
		t.Errorf("host add: %d", code)
	}
	if _, page := b.get(control.ConsolePrefix + "schools/" + n); !strings.Contains(page, extra) {
		t.Error("the added host is not on the page")
	}
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/hosts/remove", b.form("host", extra)); code != http.StatusSeeOther {
		t.Errorf("host remove: %d", code)
	}
	if e := w.lastAudit(); e.Action != "schools.host_remove" || e.Outcome != registry.OutcomeOK {
		t.Errorf("audit of host remove: %+v", e)
	}
	if tn, _ := w.reg.Tenant(t.Context(), n); len(tn.Hosts) != 1 {
		t.Errorf("hosts after add and remove: %v", tn.Hosts)
	}

	// Backup download.
	req, _ := http.NewRequest("GET", w.srv.URL+control.ConsolePrefix+"schools/"+n+"/backup", nil)
	req.AddCookie(b.cookie)
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), n) || len(arch) < 100 {
		t.Errorf("backup: %d %v", resp.StatusCode, resp.Header)
	}

	// Delete and purge need the name typed again.
	if code, page := b.get(control.ConsolePrefix + "schools/" + n + "/confirm/delete"); code != http.StatusOK || !strings.Contains(page, `name="confirm"`) {
		t.Errorf("confirm page: %d", code)
	}
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/delete", b.form("confirm", "wrong")); code != http.StatusUnprocessableEntity {
		t.Errorf("delete unconfirmed: %d", code)
	}
	if tn, _ := w.reg.Tenant(t.Context(), n); tn.State != registry.StateActive {
		t.Fatalf("an unconfirmed delete deleted the school")
	}
	if code, _, _ := b.post(control.ConsolePrefix+"schools/"+n+"/delete", b.form("confirm", n)); code != http.StatusSeeOther {
		t.Errorf("delete: %d", code)
	}
	if code, _, loc := b.post(control.ConsolePrefix+"schools/"+n+"/purge", b.form("confirm", n)); code != http.StatusSeeOther || loc != control.ConsolePrefix+"?done=purged" {
		t.Errorf("purge: %d → %s", code, loc)
	}
	if _, err := w.reg.Tenant(t.Context(), n); err == nil {
		t.Error("the school is still there after purge")
	}

	// A read-only operator sees no buttons and may not act.
	m := w.name()
	w.expect(http.StatusCreated, "schools.create", m, "POST", "/schools", newSchool(m))
	ro := w.browser(w.ro)
	if _, page := ro.get(control.ConsolePrefix + "schools/" + m); strings.Contains(page, "Suspend") || strings.Contains(page, "New school") {
		t.Error("a read-only operator is shown actions")
	}
	if code, _, _ := ro.post(control.ConsolePrefix+"schools/"+m+"/suspend", ro.form()); code != http.StatusForbidden {
		t.Errorf("read-only suspend: %d", code)
	}
	if e := w.lastAudit(); e.Action != "schools.suspend" || e.Outcome != registry.OutcomeRefused {
		t.Errorf("audit of a refused console action: %+v", e)
	}
	if code, _ := ro.get(control.ConsolePrefix + "new"); code != http.StatusForbidden {
		t.Errorf("read-only new-school form: %d", code)
	}

	// Log out ends the session.
	b.post(control.ConsolePrefix+"logout", b.form())
	if code, _ := b.get(control.ConsolePrefix); code != http.StatusSeeOther {
		t.Errorf("after log-out: %d", code)
	}
	// A wrong token does not log in.
	req, _ = http.NewRequest("POST", w.srv.URL+control.ConsolePrefix+"login", strings.NewReader(url.Values{"token": {"campus-op-nope"}, "csrf_token": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "campus_console_csrf", Value: "x"})
	resp, err = noRedirect(w).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("log-in with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}
