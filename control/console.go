package control

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
)

// The console: server-rendered pages for people, on the API's server and
// with the school admin's look (its Bootstrap and app.css, served from
// memory; nothing from a CDN). An operator logs in with an operator token,
// exchanged for a session cookie with the school admin's rules (HttpOnly,
// SameSite=Lax, Secure under TLS or with SecureCookies); every form carries
// the session's CSRF token (the log-in form a double-submit cookie's).
// The session names the token by ID and the token is read again on every
// request: revoking it ends its sessions at once.

// ConsolePrefix starts every console path.
const ConsolePrefix = "/console/"

const (
	sessionCookie = "campus_console"
	csrfCookie    = "campus_console_csrf"
	csrfField     = "csrf_token"
	// SessionTTL is how long a console session lasts.
	SessionTTL = 12 * time.Hour
)

//go:embed templates
var templateFS embed.FS

type session struct {
	tokenID string
	csrf    string
	expires time.Time
}

// sessions are kept in this server's memory (a restart logs everybody
// out).
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

func (ss *sessions) add(tokenID string) (string, session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]session{}
	}
	now := time.Now()
	for k, v := range ss.m {
		if now.After(v.expires) {
			delete(ss.m, k)
		}
	}
	id := randomToken()
	s := session{tokenID: tokenID, csrf: randomToken(), expires: now.Add(SessionTTL)}
	ss.m[id] = s
	return id, s
}

func (ss *sessions) get(id string) (session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok || time.Now().After(s.expires) {
		delete(ss.m, id)
		return session{}, false
	}
	return s, true
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

type console struct {
	s      *Server
	pages  map[string]*template.Template
	static http.Handler
}

func (s *Server) consoleRoutes(mux *http.ServeMux) {
	static, url, err := app.Static(ConsolePrefix + "static/")
	if err != nil {
		panic(err) // embedded files: caught by every test
	}
	c := &console{s: s, static: static, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"static":    url,
		"sparkline": sparkline,
		"when":      func(t time.Time) string { return whenText(t) },
		"pct":       func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
		"ms":        func(f float64) string { return fmt.Sprintf("%.0f ms", 1000*f) },
		"rps":       func(f float64) string { return fmt.Sprintf("%.2f", f) },
	}
	for _, p := range []string{"login", "schools", "school", "new", "created", "confirm", "error"} {
		c.pages[p] = template.Must(template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+p+".html"))
	}
	mux.Handle("GET "+ConsolePrefix+"static/{file}", static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, ConsolePrefix, http.StatusFound) })
	mux.HandleFunc("GET "+ConsolePrefix+"login", c.loginForm)
	mux.HandleFunc("POST "+ConsolePrefix+"login", c.login)
	mux.Handle("POST "+ConsolePrefix+"logout", c.auth(false, "", c.logout))
	mux.Handle("GET "+ConsolePrefix+"{$}", c.auth(false, "", c.schools))
	mux.Handle("GET "+ConsolePrefix+"new", c.auth(true, "", c.newForm))
	mux.Handle("POST "+ConsolePrefix+"schools", c.auth(true, "schools.create", c.create))
	mux.Handle("GET "+ConsolePrefix+"schools/{name}", c.auth(false, "", c.school))
	mux.Handle("GET "+ConsolePrefix+"schools/{name}/backup", c.auth(false, "backups.download", c.backup))
	mux.Handle("GET "+ConsolePrefix+"schools/{name}/confirm/{action}", c.auth(true, "", c.confirm))
	for _, a := range []string{"suspend", "resume", "delete", "restore", "purge"} {
		mux.Handle("POST "+ConsolePrefix+"schools/{name}/"+a, c.auth(true, "schools."+a, c.action(a)))
	}
	mux.Handle("POST "+ConsolePrefix+"schools/{name}/set", c.auth(true, "schools.set", c.set))
	mux.Handle("POST "+ConsolePrefix+"schools/{name}/hosts", c.auth(true, "schools.host_add", c.hosts(true)))
	mux.Handle("POST "+ConsolePrefix+"schools/{name}/hosts/remove", c.auth(true, "schools.host_remove", c.hosts(false)))
}

// page is what every template gets.
type page struct {
	Title    string
	Operator registry.OperatorToken
	CSRF     string
	Flash    string
	Error    string
	Data     any
}

func (c *console) render(w http.ResponseWriter, code int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := c.pages[name].Execute(w, p); err != nil {
		c.s.logger().Error("control console: render", "page", name, "err", err)
	}
}

func (c *console) secure(r *http.Request) bool {
	return c.s.SecureCookies || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (c *console) setCookie(w http.ResponseWriter, r *http.Request, ck *http.Cookie) {
	ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path = true, http.SameSiteLaxMode, c.secure(r), ConsolePrefix
	http.SetCookie(w, ck)
}

func (c *console) loginForm(w http.ResponseWriter, r *http.Request) {
	tok := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		tok = ck.Value
	} else {
		tok = randomToken()
		c.setCookie(w, r, &http.Cookie{Name: csrfCookie, Value: tok})
	}
	c.render(w, http.StatusOK, "login", page{Title: "Log in", CSRF: tok})
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || !equalTokens(r.PostForm.Get(csrfField), ck.Value) {
		c.render(w, http.StatusForbidden, "error", page{Title: "Refused", Error: "The form expired or did not come from this console. Go back, reload the page and try again."})
		return
	}
	op, err := c.s.authenticate(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		c.s.logger().Warn("control console: log-in refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", CSRF: ck.Value, Error: "That is not a live operator token."})
		return
	}
	id, _ := c.s.sessions.add(op.ID)
	c.setCookie(w, r, &http.Cookie{Name: sessionCookie, Value: id, MaxAge: int(SessionTTL / time.Second)})
	c.s.audit(r.Context(), &call{op: op}, "console.login", http.StatusSeeOther)
	http.Redirect(w, r, ConsolePrefix, http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, p page) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.s.sessions.drop(ck.Value)
	}
	c.setCookie(w, r, &http.Cookie{Name: sessionCookie, Value: "", MaxAge: -1})
	http.Redirect(w, r, ConsolePrefix+"login", http.StatusSeeOther)
}

// auth runs h for a logged-in operator whose token is still live; write
// pages are refused to read-only tokens, every POST needs the session's
// CSRF token, and actions (action != "") are audited.
func (c *console) auth(write bool, action string, h func(w http.ResponseWriter, r *http.Request, p page)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var sess session
		ok := err == nil
		if ok {
			sess, ok = c.s.sessions.get(ck.Value)
		}
		var op registry.OperatorToken
		if ok {
			op, err = c.s.Registry.OperatorToken(r.Context(), sess.tokenID)
			ok = err == nil && !op.Revoked()
			if !ok {
				c.s.sessions.drop(ck.Value)
			}
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, ConsolePrefix+"login", http.StatusSeeOther)
				return
			}
			c.render(w, http.StatusUnauthorized, "error", page{Title: "Log in again", Error: "Your session ended. Log in again."})
			return
		}
		p := page{Operator: op, CSRF: sess.csrf}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil || !equalTokens(r.PostForm.Get(csrfField), sess.csrf) {
				c.render(w, http.StatusForbidden, "error", page{Title: "Refused", Operator: op, CSRF: sess.csrf,
					Error: "The form expired or did not come from this console. Go back, reload the page and try again."})
				return
			}
		}
		cl := &call{op: op, target: r.PathValue("name")}
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, cl))
		sw := &statusWriter{ResponseWriter: w}
		if write && op.ReadOnly {
			cl.detail = "read-only token"
			c.render(sw, http.StatusForbidden, "error", page{Title: "Read-only", Operator: op, CSRF: sess.csrf,
				Error: "Your operator token is read-only: it may look, not change."})
		} else {
			h(sw, r, p)
		}
		if action != "" {
			c.s.audit(r.Context(), cl, action, sw.status())
		}
	})
}

// SchoolRow is one row of the console's schools table.
type SchoolRow struct {
	SchoolSummary
	Stats SchoolStats
}

func (c *console) schools(w http.ResponseWriter, r *http.Request, p page) {
	q := r.URL.Query()
	state := registry.State(q.Get("state"))
	if state != "" && !state.Valid() {
		state = ""
	}
	snap, err := c.s.Registry.Snapshot(r.Context())
	if err != nil {
		c.fail(w, p, err)
		return
	}
	list := c.s.page(snap, state, q.Get("after"), 50)
	rows := make([]SchoolRow, len(list.Schools))
	for i, sc := range list.Schools {
		rows[i] = SchoolRow{SchoolSummary: sc, Stats: c.s.Stats.School(sc.Name)}
	}
	p.Title, p.Flash = "Schools", flash(q.Get("done"))
	p.Data = map[string]any{"Rows": rows, "Total": list.Total, "Next": list.Next, "State": string(state),
		"States": []registry.State{registry.StateActive, registry.StateSuspended, registry.StateCreating, registry.StateDeleted}}
	c.render(w, http.StatusOK, "schools", p)
}

func (c *console) school(w http.ResponseWriter, r *http.Request, p page) {
	d, err := c.s.detail(r.Context(), r.PathValue("name"))
	if err != nil {
		c.fail(w, p, err)
		return
	}
	audit, err := c.s.Registry.Audit(r.Context(), registry.AuditQuery{Target: d.Name, Limit: 20})
	if err != nil {
		c.fail(w, p, err)
		return
	}
	p.Title, p.Flash = d.DisplayName, flash(r.URL.Query().Get("done"))
	p.Data = map[string]any{"School": d, "Audit": audit, "CanPurge": tenancy.CanPurge(d.Tenant) == nil}
	c.render(w, http.StatusOK, "school", p)
}

func (c *console) newForm(w http.ResponseWriter, r *http.Request, p page) {
	p.Title, p.Data = "New school", CreateRequest{}
	c.render(w, http.StatusOK, "new", p)
}

func (c *console) create(w http.ResponseWriter, r *http.Request, p page) {
	f := r.PostForm
	req := CreateRequest{Name: strings.TrimSpace(f.Get("name")), DisplayName: strings.TrimSpace(f.Get("display_name")),
		Superuser: strings.TrimSpace(f.Get("superuser")), Email: strings.TrimSpace(f.Get("email"))}
	for _, h := range strings.FieldsFunc(f.Get("hosts"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		req.Hosts = append(req.Hosts, h)
	}
	callOf(r).target = req.Name
	code, v := c.s.create(r.Context(), req)
	if e, ok := v.(apiError); ok {
		callOf(r).detail = e.Error
		p.Title, p.Error, p.Data = "New school", e.Error, req
		c.render(w, code, "new", p)
		return
	}
	p.Title, p.Data = "School created", v
	c.render(w, http.StatusCreated, "created", p)
}

func (c *console) confirm(w http.ResponseWriter, r *http.Request, p page) {
	action := r.PathValue("action")
	if action != "delete" && action != "purge" {
		http.NotFound(w, r)
		return
	}
	t, err := c.s.Manager.Lookup(r.Context(), r.PathValue("name"))
	if err != nil {
		c.fail(w, p, err)
		return
	}
	p.Title, p.Data = strings.ToUpper(action[:1])+action[1:]+" "+t.Name, map[string]any{"School": t, "Action": action}
	c.render(w, http.StatusOK, "confirm", p)
}

// action runs a lifecycle action from the school page's buttons; delete
// and purge need the school's name typed again (the confirm page).
func (c *console) action(a string) func(w http.ResponseWriter, r *http.Request, p page) {
	return func(w http.ResponseWriter, r *http.Request, p page) {
		ctx, name := r.Context(), r.PathValue("name")
		if (a == "delete" || a == "purge") && r.PostForm.Get("confirm") != name {
			callOf(r).detail = "not confirmed"
			w.Header().Set("Location", ConsolePrefix+"schools/"+name+"/confirm/"+a)
			c.render(w, http.StatusUnprocessableEntity, "error", page{Title: "Not confirmed", Operator: p.Operator, CSRF: p.CSRF,
				Error: fmt.Sprintf("Type the school's name, %s, to %s it.", name, a)})
			return
		}
		var err error
		switch a {
		case "suspend":
			_, err = c.s.Manager.SetState(ctx, name, registry.StateSuspended)
		case "resume":
			_, err = c.s.Manager.SetState(ctx, name, registry.StateActive)
		case "restore":
			_, _, err = c.s.Manager.Restore(ctx, name)
		case "delete", "purge":
			var t registry.Tenant
			if t, err = c.s.Manager.Lookup(ctx, name); err == nil {
				if a == "delete" {
					_, err = c.s.Manager.Delete(ctx, t, c.s.retention(), false)
				} else if err = tenancy.CanPurge(t); err != nil {
					err = &tenancy.WrongStateError{Op: "purge", Tenant: t}
				} else {
					err = c.s.Manager.Purge(ctx, t)
				}
			}
		}
		if err != nil {
			callOf(r).detail = err.Error()
			c.fail(w, p, err)
			return
		}
		to := ConsolePrefix + "schools/" + name
		if a == "purge" {
			to = ConsolePrefix
		}
		http.Redirect(w, r, to+"?done="+pastTense[a], http.StatusSeeOther)
	}
}

var pastTense = map[string]string{"suspend": "suspended", "resume": "resumed", "delete": "deleted", "restore": "restored", "purge": "purged",
	"set": "settings saved", "host_add": "host added", "host_remove": "host removed"}

// set saves the idle timeout and memory of the school page's form (both
// checked before either is written; empty: the supervisor's default).
func (c *console) set(w http.ResponseWriter, r *http.Request, p page) {
	name := r.PathValue("name")
	idle, mem := strings.TrimSpace(r.PostForm.Get("idle_timeout")), strings.TrimSpace(r.PostForm.Get("memory"))
	_, err := registry.ParseIdleTimeout(idle)
	if err == nil {
		_, err = registry.ParseMemory(mem)
	}
	if err == nil {
		_, err = c.s.Manager.Lookup(r.Context(), name)
	}
	if err == nil {
		_, err = c.s.Registry.SetIdleTimeout(r.Context(), name, idle)
	}
	if err == nil {
		_, err = c.s.Registry.SetMemory(r.Context(), name, mem)
	}
	c.done(w, r, p, name, "set", err)
}

// hosts adds or removes the host of the school page's forms.
func (c *console) hosts(add bool) func(w http.ResponseWriter, r *http.Request, p page) {
	return func(w http.ResponseWriter, r *http.Request, p page) {
		name, host := r.PathValue("name"), strings.TrimSpace(r.PostForm.Get("host"))
		_, err := c.s.Manager.Lookup(r.Context(), name)
		what := "host_remove"
		if add {
			what = "host_add"
		}
		if err == nil && add {
			_, err = c.s.Registry.AddHost(r.Context(), name, host)
		} else if err == nil {
			_, err = c.s.Registry.RemoveHost(r.Context(), name, host)
		}
		c.done(w, r, p, name, what, err)
	}
}

// done answers a school page's form: back to the page, or the error.
func (c *console) done(w http.ResponseWriter, r *http.Request, p page, name, what string, err error) {
	if err != nil {
		callOf(r).detail = err.Error()
		c.fail(w, p, err)
		return
	}
	http.Redirect(w, r, ConsolePrefix+"schools/"+name+"?done="+url.QueryEscape(pastTense[what]), http.StatusSeeOther)
}

func (c *console) backup(w http.ResponseWriter, r *http.Request, p page) {
	c.s.downloadBackup(w, r)
}

func (c *console) fail(w http.ResponseWriter, p page, err error) {
	code, e := classify(err)
	if code >= 500 {
		c.s.logger().Error("control console", "err", err)
	}
	p.Title, p.Error = "Not done", e.Error
	c.render(w, code, "error", p)
}

// flash is the message of a done action, only of the known ones (the
// query string is anybody's).
func flash(done string) string {
	for _, v := range pastTense {
		if v == done {
			return done
		}
	}
	return ""
}

func whenText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// sparkline draws a school's requests (line) and errors (red) per minute
// over the last hour as a small inline SVG: drawn here, from Stats' ring.
func sparkline(st SchoolStats) template.HTML {
	const w, h = 120.0, 24.0
	peak := 1.0
	for i := range st.Requests {
		peak = max(peak, st.Requests[i], st.Errors[i])
	}
	line := func(vs []float64) string {
		var b strings.Builder
		for i, v := range vs {
			x := w * float64(i) / float64(len(vs)-1)
			y := h - 1 - (h-2)*v/peak
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x, y)
		}
		return b.String()
	}
	var total, errs float64
	for i := range st.Requests {
		total += st.Requests[i]
		errs += st.Errors[i]
	}
	return template.HTML(fmt.Sprintf(`<svg class="sparkline" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%.0f requests and %.0f errors in the last hour">`+
		`<polyline fill="none" stroke="#0a58ca" stroke-width="1.5" points="%s"/>`+
		`<polyline fill="none" stroke="#b02a37" stroke-width="1.5" points="%s"/></svg>`,
		w, h, w, h, total, errs, line(st.Requests), line(st.Errors)))
}
