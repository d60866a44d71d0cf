package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/store"
)

func TestLoginLogout(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()

	// The login form sets the anonymous CSRF cookie.
	form := b.get("/admin/login/")
	wantCode(t, form, http.StatusOK)
	wantBody(t, form, `name="username"`, `name="password"`)
	if b.cookie(csrfCookie) == "" || b.cookie(csrfCookie) != csrfOf(t, form.body) {
		t.Fatal("login form: csrf cookie missing or not equal to the field")
	}
	r := b.post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}, "csrf_token": {csrfOf(t, form.body)}})
	wantCode(t, r, http.StatusSeeOther)
	cookie := findSetCookie(r, sessionCookie)
	if cookie == nil {
		t.Fatal("no session cookie set")
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("session cookie attributes: %+v", cookie)
	}
	if want := e.clock.Now().Add(8 * time.Hour); !cookie.Expires.Equal(want.Truncate(time.Second)) {
		t.Errorf("session cookie expires %v, want %v", cookie.Expires, want)
	}
	token := cookie.Value
	if _, err := e.store.Session(context.Background(), token); err != nil {
		t.Fatalf("session not in the store: %v", err)
	}
	// Logged in: the login page goes to the admin.
	if r := b.get("/admin/login/"); r.code != http.StatusSeeOther || r.location() != "/admin/students/" {
		t.Errorf("login page while logged in: %d %q", r.code, r.location())
	}
	list := b.get("/admin/students/")
	wantCode(t, list, http.StatusOK)
	wantBody(t, list, "Logged in as <strong>admin</strong>")

	// Logout is POST only.
	wantCode(t, b.get("/admin/logout/"), http.StatusMethodNotAllowed)
	r = b.post("/admin/logout/", url.Values{"csrf_token": {csrfOf(t, list.body)}})
	wantCode(t, r, http.StatusSeeOther)
	if c := findSetCookie(r, sessionCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("logout does not clear the cookie: %+v", c)
	}
	wantBody(t, b.follow(r), "You have been logged out.")
	if _, err := e.store.Session(context.Background(), token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session still in the store after logout: %v", err)
	}
	// The old cookie, replayed, is worthless.
	b2 := e.browser()
	b2.setCookie(sessionCookie, token)
	if r := b2.get("/admin/students/"); r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("replayed cookie after logout: %d %q", r.code, r.location())
	}
}

func TestLoginMakesNewSession(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	first := e.browser()
	first.login()
	firstToken := first.cookie(sessionCookie)

	// A fixation attempt: a token chosen by an attacker (well-formed, or
	// even a real session of the attacker's) is in the victim's jar when
	// the victim logs in. Login always makes a new session.
	for _, planted := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", firstToken} {
		b := e.browser()
		lp := b.get("/admin/login/")
		b.setCookie(sessionCookie, planted)
		r := b.post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}, "csrf_token": {csrfOf(t, lp.body)}})
		wantCode(t, r, http.StatusSeeOther)
		got := b.cookie(sessionCookie)
		if got == "" || got == planted {
			t.Fatalf("login kept the planted token %q", planted)
		}
	}
	// The planted real session was replaced (deleted) by the new login.
	if _, err := e.store.Session(context.Background(), firstToken); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced session still works: %v", err)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	user := b.tryLogin("nobody", testPassword)
	pass := b.tryLogin(testUser, "wrong-password-1")
	for _, r := range []response{user, pass} {
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, msgBadLogin)
		if findSetCookie(r, sessionCookie) != nil {
			t.Error("a failed login set a session cookie")
		}
	}
	// Apart from the echoed username, the pages are identical.
	norm := func(body, username string) string {
		return strings.ReplaceAll(body, `value="`+username+`"`, `value="USER"`)
	}
	if a, b := norm(user.body, "nobody"), norm(pass.body, testUser); a != b {
		t.Errorf("wrong username and wrong password give different pages:\n%s\n----\n%s", a, b)
	}
	wantNoBody(t, pass, "wrong-password-1")
	if got := e.loginFailures(); got != 2 {
		t.Errorf("login failures metric %v, want 2", got)
	}
	// Empty fields: per-field messages, no attempt counted.
	r := b.tryLogin("", "")
	wantBody(t, r, `id="err_username"`, `id="err_password"`, msgRequired)
	if got := e.loginFailures(); got != 2 {
		t.Errorf("empty form counted as a failure: %v", got)
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t, "acme", envOptions{storeOpts: store.Options{MaxFailures: 3, LockoutPeriod: 5 * time.Minute}})
	b := e.browserFrom("203.0.113.7")
	for i := 0; i < 2; i++ {
		wantBody(t, b.tryLogin(testUser, "wrong-password-1"), msgBadLogin)
	}
	// The failure that locks, and the right password while locked, get
	// the lock-out page: locked, until when, the password not checked.
	until := "until " + defaultLocale().when(e.clock.Now().Add(5*time.Minute))
	for _, pw := range []string{"wrong-password-1", testPassword} {
		r := b.tryLogin(testUser, pw)
		wantCode(t, r, http.StatusTooManyRequests)
		wantBody(t, r, `id="login-locked"`, "This username is locked out", until, "ask a superuser")
		wantNoBody(t, r, msgBadLogin)
		if findSetCookie(r, sessionCookie) != nil {
			t.Fatal("logged in while locked out")
		}
	}
	if !strings.Contains(e.logs.String(), "login refused: locked out") {
		t.Error("the lock-out is not in the log")
	}
	wantNoLog(t, e, testPassword, "wrong-password-1")
	e.clock.Add(4*time.Minute + 30*time.Second)
	wantCode(t, b.tryLogin(testUser, testPassword), http.StatusTooManyRequests)
	e.clock.Add(time.Minute)
	b.login()
	if got := e.loginFailures(); got != 5 {
		t.Errorf("login failures metric %v, want 5", got)
	}
}

// Issue 25: a pupil behind the school's one NAT address fails 31 times
// with usernames that do not exist (nobody0 … nobody30); then the real
// admin, from that address, with the right password, gets in. The
// pupil's own usernames are locked there, not the staff's.
func TestNATCannotLockOutStaff(t *testing.T) {
	e := newEnv(t, "acme", envOptions{}) // the default limits: 30 per address and hour
	const nat = "203.0.113.80"
	pupil := e.browserFrom(nat)
	for i := range 31 {
		r := pupil.tryLogin(fmt.Sprintf("nobody%d", i), "wrong-password-1")
		if r.code != http.StatusOK && r.code != http.StatusTooManyRequests {
			t.Fatalf("attempt %d: %d", i, r.code)
		}
	}
	wantCode(t, pupil.tryLogin("nobody3", "wrong-password-1"), http.StatusTooManyRequests)
	e.browserFrom(nat).login()
}

// wantNoLog fails if the app's log contains any of subs.
func wantNoLog(t *testing.T, e *env, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(e.logs.String(), sub) {
			t.Errorf("the log contains %q", sub)
		}
	}
}

// Failures from one client address (as the proxy names it in
// X-Forwarded-For) lock that address out, not the admin at another one;
// without the header the peer address counts.
func TestLockoutPerAddress(t *testing.T) {
	e := newEnv(t, "acme", envOptions{storeOpts: store.Options{MaxFailures: 3, LockoutPeriod: time.Hour}})
	attacker := e.browserFrom("203.0.113.7")
	for range 5 {
		_ = attacker.tryLogin(testUser, "wrong-password-1")
	}
	if r := attacker.tryLogin(testUser, testPassword); r.code != http.StatusTooManyRequests || findSetCookie(r, sessionCookie) != nil {
		t.Fatalf("the attacker's address is not locked: %d", r.code)
	}
	e.browserFrom("198.51.100.20").login() // the real admin, elsewhere
	e.browser().login()                    // no header: 127.0.0.1, the test client
	if !strings.Contains(e.logs.String(), `"client":"203.0.113.7"`) {
		t.Errorf("failures not logged with the client address:\n%s", e.logs)
	}

	// The last value is the one the nearest proxy added.
	spoofer := e.browserFrom("198.51.100.20, 203.0.113.7")
	if r := spoofer.tryLogin(testUser, testPassword); findSetCookie(r, sessionCookie) != nil {
		t.Fatal("a client-sent first X-Forwarded-For value escaped the lock-out")
	}
}

// A wrong password and an unknown username give the same page with the
// same status; so do a locked known and a locked unknown username (the
// lock-out page says it is one, but not whether the user exists).
func TestLoginFailurePagesIdentical(t *testing.T) {
	e := newEnv(t, "acme", envOptions{storeOpts: store.Options{MaxFailures: 2}})
	lock := func(addr, user string) response {
		b := e.browserFrom(addr)
		for range 2 {
			b.tryLogin(user, "wrong-password-1")
		}
		return b.tryLogin(user, testPassword)
	}
	norm := func(r response, username string) string {
		body := csrfRE.ReplaceAllString(r.body, `name="csrf_token" value="TOKEN"`)
		body = strings.ReplaceAll(body, `value="`+username+`"`, `value="USER"`)
		return fmt.Sprintf("%d\n%s", r.code, body)
	}
	pairs := []struct {
		name             string
		known, unknown   response
		code             int
		want, wantAbsent string
	}{
		{"wrong password / unknown user",
			e.browserFrom("203.0.113.2").tryLogin(testUser, "wrong-password-2"),
			e.browserFrom("203.0.113.3").tryLogin("nobody", testPassword),
			http.StatusOK, msgBadLogin, "locked"},
		{"locked known / locked unknown user",
			lock("203.0.113.4", testUser), lock("203.0.113.5", "nobody"),
			http.StatusTooManyRequests, "This username is locked out", msgBadLogin},
	}
	for _, p := range pairs {
		for _, r := range []response{p.known, p.unknown} {
			if findSetCookie(r, sessionCookie) != nil {
				t.Errorf("%s: a session cookie was set", p.name)
			}
			wantCode(t, r, p.code)
			wantBody(t, r, p.want)
			wantNoBody(t, r, p.wantAbsent)
		}
		if k, u := norm(p.known, testUser), norm(p.unknown, "nobody"); k != u {
			t.Errorf("%s: the pages differ:\n%s\n----\n%s", p.name, k, u)
		}
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	st := e.addStudent("C-1", "Cross", "Site")
	b := e.browser()
	b.login()
	other := e.browser()
	other.login() // a second session of the same user
	otherToken := csrfOf(t, other.get("/admin/students/").body)
	own := csrfOf(t, b.get("/admin/students/").body)
	if own == otherToken {
		t.Fatal("two sessions share a CSRF token")
	}

	actions := []struct {
		name, path string
		form       url.Values
	}{
		{"add", "/admin/students/add/", url.Values{"registration_no": {"C-2"}, "first_name": {"A"}, "second_name": {"B"}}},
		{"change", fmt.Sprintf("/admin/students/%d/change/", st.ID), url.Values{"registration_no": {"C-9"}, "first_name": {"A"}, "second_name": {"B"}}},
		{"delete", fmt.Sprintf("/admin/students/%d/delete/", st.ID), url.Values{}},
		{"delete selected", "/admin/students/delete-selected/", url.Values{"ids": {fmt.Sprint(st.ID)}, "confirm": {"yes"}}},
		{"logout", "/admin/logout/", url.Values{}},
	}
	tokens := []struct {
		name, token string
		set         bool
	}{
		{"missing", "", false},
		{"empty", "", true},
		{"wrong", "not-the-token", true},
		{"other session's", otherToken, true},
	}
	for _, a := range actions {
		for _, tok := range tokens {
			t.Run(a.name+"/"+tok.name, func(t *testing.T) {
				form := url.Values{}
				for k, v := range a.form {
					form[k] = v
				}
				if tok.set {
					form.Set("csrf_token", tok.token)
				}
				r := b.post(a.path, form)
				wantCode(t, r, http.StatusForbidden)
				wantBody(t, r, "CSRF")
			})
		}
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d students after refused requests, want 1", n)
	}
	got, _ := e.store.Student(context.Background(), st.ID)
	if got.RegistrationNo != "C-1" {
		t.Fatalf("student changed: %+v", got)
	}
	if r := b.get("/admin/students/"); r.code != http.StatusOK {
		t.Fatal("refused logout logged out")
	}
	// The anonymous login form: the field must match the cookie.
	anon := e.browser()
	anon.get("/admin/login/")
	r := anon.post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}, "csrf_token": {"forged"}})
	wantCode(t, r, http.StatusForbidden)
	r = e.browser().post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword}, "csrf_token": {own}})
	wantCode(t, r, http.StatusForbidden)
}

// TestSessionOfAnotherTenant: the same cookie value presented to another
// tenant's server (its own database) names nothing there.
func TestSessionOfAnotherTenant(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	bEnv := newEnv(t, "beta", envOptions{})
	victim := bEnv.addStudent("B-1", "Beta", "Pupil")

	ab := a.browser()
	ab.login()
	token := ab.cookie(sessionCookie)
	csrf := csrfOf(t, ab.get("/admin/students/").body)

	thief := bEnv.browser()
	thief.setCookie(sessionCookie, token)
	r := thief.get("/admin/students/")
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/login/") {
		t.Fatalf("B accepted A's session: %d %q", r.code, r.location())
	}
	thief.setCookie(sessionCookie, token)
	for _, path := range []string{"/admin/students/add/", fmt.Sprintf("/admin/students/%d/delete/", victim.ID)} {
		r := thief.post(path, url.Values{"csrf_token": {csrf}, "registration_no": {"X-1"}, "first_name": {"X"}, "second_name": {"Y"}})
		wantCode(t, r, http.StatusForbidden)
	}
	if n := bEnv.count(); n != 1 {
		t.Fatalf("B has %d students, want 1", n)
	}
	// And A's own server still knows the session.
	wantCode(t, ab.get("/admin/students/"), http.StatusOK)
}

func TestNextRedirect(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	tests := []struct{ next, want string }{
		{"/admin/students/?q=a", "/admin/students/?q=a"},
		{"/admin/students/7/change/", "/admin/students/7/change/"},
		{"", "/admin/students/"},
		{"//evil.example/admin/", "/admin/students/"},
		{"https://evil.example/admin/", "/admin/students/"},
		{"/\\evil.example", "/admin/students/"},
		{"/admin/\\\\evil.example", "/admin/students/"},
		{"/admin/\nLocation: x", "/admin/students/"},
		{"javascript:alert(1)", "/admin/students/"},
		{"/", "/admin/students/"},
		{"/admin/logout/", "/admin/students/"},
		{"evil.example", "/admin/students/"},
	}
	for _, tc := range tests {
		t.Run(tc.next, func(t *testing.T) {
			b := e.browser()
			p := b.get("/admin/login/?next=" + url.QueryEscape(tc.next))
			if tc.want != "/admin/students/" || tc.next == "" {
				wantCode(t, p, http.StatusOK)
			} else {
				wantNoBody(t, p, "evil")
			}
			r := b.post("/admin/login/", url.Values{"username": {testUser}, "password": {testPassword},
				"csrf_token": {csrfOf(t, p.body)}, "next": {tc.next}})
			if r.code != http.StatusSeeOther || r.location() != tc.want {
				t.Fatalf("next=%q: %d to %q, want %q", tc.next, r.code, r.location(), tc.want)
			}
			// Already logged in, the login page obeys the same rule.
			r = b.get("/admin/login/?next=" + url.QueryEscape(tc.next))
			if r.location() != tc.want {
				t.Fatalf("logged in, next=%q: to %q, want %q", tc.next, r.location(), tc.want)
			}
		})
	}
}

func TestForgedFlashIgnored(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.login()
	for _, v := range []string{
		"added.UGF5IG5vdw", // no signature
		"added.UGF5IG5vdw.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // bad signature
		"logged_out.UGF5IG5vdw.AAAA",                                   // value on a fixed message
		"<b>Pay now</b>",                                               // not a kind at all
	} {
		u, _ := url.Parse(b.url("/admin/"))
		b.jar.SetCookies(u, []*http.Cookie{{Name: flashCookie, Value: v, Path: "/admin/"}})
		r := b.get("/admin/students/")
		wantNoBody(t, r, "Pay now", "You have been logged out", `id="flash"`)
	}
	// A genuine message from the other session is not valid here either.
	other := e.browser()
	other.login()
	other.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"F-1"}, "first_name": {"Flash"}, "second_name": {"Gordon"}})
	// (the jar kept no flash: read it from a fresh add without following)
	p := other.get("/admin/students/add/")
	r := other.post("/admin/students/add/", url.Values{"csrf_token": {csrfOf(t, p.body)},
		"registration_no": {"F-2"}, "first_name": {"Flash"}, "second_name": {"Two"}})
	fc := findSetCookie(r, flashCookie)
	if fc == nil {
		t.Fatal("no flash cookie after add")
	}
	u, _ := url.Parse(b.url("/admin/"))
	b.jar.SetCookies(u, []*http.Cookie{{Name: flashCookie, Value: fc.Value, Path: "/admin/"}})
	wantNoBody(t, b.get("/admin/students/"), "was added successfully")
}

func TestSecretsNotLogged(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.tryLogin(testUser, "wrong-password-1")
	b.login()
	token := b.cookie(sessionCookie)
	list := b.get("/admin/students/")
	csrf := csrfOf(t, list.body)
	b.post("/admin/logout/", url.Values{"csrf_token": {csrf}})
	logs := e.logs.String()
	for _, secret := range []string{testPassword, "wrong-password-1", token, csrf} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret appears in the logs:\n%s", logs)
		}
	}
	// Every request line names the tenant and a route.
	re := regexp.MustCompile(`"msg":"request"`)
	lines := 0
	for _, l := range strings.Split(logs, "\n") {
		if re.MatchString(l) {
			lines++
			if !strings.Contains(l, `"tenant":"acme"`) || !strings.Contains(l, `"route":`) || !strings.Contains(l, `"request_id":`) {
				t.Errorf("request log line lacks tenant, route or id: %s", l)
			}
		}
	}
	if lines < 5 {
		t.Errorf("only %d request log lines", lines)
	}
}

func findSetCookie(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}
