package app

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

const (
	testUser     = "admin"
	testPassword = "correct-horse-42"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer = systemtest.Buffer

// env is one tenant's app over its own fresh database, served on
// 127.0.0.1 by httptest.
type env struct {
	t      *testing.T
	tenant registry.Tenant
	db     dbHandle
	store  *store.Store
	reg    *prometheus.Registry
	srv    *httptest.Server
	logs   *syncBuffer
	clock  *clock
	app    *server // behind srv: its import gate, for the tests of it
}

type dbHandle interface{ Name() string }

type envOptions struct {
	storeOpts   store.Options
	noMigrate   bool
	noSuperuser bool
	maxUpload   int64
	hosts       func() registry.Tenant // Config.Hosts
}

// newEnv starts tenant name (hosts name.school.localhost and
// www.name.example) with a superuser.
func newEnv(t *testing.T, name string, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	tenant, err := registry.NewTenant(name, []string{name + ".school.localhost", "www." + name + ".example"}, "School of "+name)
	if err != nil {
		t.Fatal(err)
	}
	db := mongotest.Database(t)
	clk := &clock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	so := o.storeOpts
	so.BcryptCost = bcrypt.MinCost
	if so.QueryTimeout == 0 {
		so.QueryTimeout = 2 * time.Minute // a busy machine, -race: no deadline in the way
	}
	so.Now = clk.Now
	st := store.New(db, so)
	if !o.noMigrate {
		if _, _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if !o.noSuperuser {
			if _, err := st.CreateSuperuser(ctx, testUser, "admin@example.com", testPassword); err != nil {
				t.Fatal(err)
			}
		}
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	app, err := newServer(Config{
		Tenant:         tenant,
		Store:          st,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     reg,
		Now:            clk.Now,
		MaxUploadBytes: o.maxUpload,
		Hosts:          o.hosts,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.routes()) // what NewServer returns
	t.Cleanup(srv.Close)
	return &env{t: t, tenant: tenant, db: db, store: st, reg: reg, srv: srv, logs: logs, clock: clk, app: app}
}

// host is the tenant's primary host name.
func (e *env) host() string { return e.tenant.PrimaryHost }

func (e *env) addStudent(regNo, first, second string) store.Student {
	e.t.Helper()
	st, err := e.store.CreateStudent(context.Background(), store.StudentInput{RegistrationNo: regNo, FirstName: first, SecondName: second})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) count() int64 {
	e.t.Helper()
	n, err := e.store.CountStudents(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// browser is a client with its own cookie jar. Every request goes to the
// env's server whatever the URL's host (Go does not resolve *.localhost),
// so cookies are scoped by the tenant host names as in a real browser.
type browser struct {
	t    *testing.T
	e    *env
	host string
	jar  *cookiejar.Jar
	c    *http.Client
	from string // X-Forwarded-For of every request, as the proxy sets it; "" for none
}

func (e *env) browser() *browser { return e.browserAt(e.host()) }

// browserFrom is a browser behind the proxy at client address addr.
func (e *env) browserFrom(addr string) *browser {
	b := e.browserAt(e.host())
	b.from = addr
	return b
}

func (e *env) browserAt(host string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	addr := e.srv.Listener.Addr().String()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: e.t, e: e, host: host, jar: jar, c: &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

type response struct {
	code   int
	body   string
	header http.Header
}

func (r response) location() string { return r.header.Get("Location") }

func (b *browser) url(path string) string { return "http://" + b.host + path }

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	if b.from != "" {
		req.Header.Set("X-Forwarded-For", b.from)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{code: resp.StatusCode, body: string(body), header: resp.Header}
}

func (b *browser) get(path string, hdr ...string) response {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.url(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// follow GETs redirects until a page is reached.
func (b *browser) follow(r response) response {
	b.t.Helper()
	for i := 0; i < 10 && r.code >= 300 && r.code < 400; i++ {
		r = b.get(r.location())
	}
	return r
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf_token in page:\n%s", body)
	}
	return m[1]
}

// submit GETs a page with a form, then POSTs fields with the form's CSRF
// token to action.
func (b *browser) submit(page, action string, fields url.Values) response {
	b.t.Helper()
	p := b.get(page)
	if p.code != http.StatusOK {
		b.t.Fatalf("GET %s: %d", page, p.code)
	}
	if fields == nil {
		fields = url.Values{}
	}
	fields.Set("csrf_token", csrfOf(b.t, p.body))
	return b.post(action, fields)
}

// tryLogin submits the real login form.
func (b *browser) tryLogin(user, password string) response {
	b.t.Helper()
	return b.submit("/admin/login/", "/admin/login/", url.Values{"username": {user}, "password": {password}})
}

// login logs in as the test superuser and checks that it worked.
func (b *browser) login() {
	b.t.Helper()
	r := b.tryLogin(testUser, testPassword)
	if r.code != http.StatusSeeOther || r.location() != "/admin/students/" {
		b.t.Fatalf("login: %d to %q:\n%s", r.code, r.location(), r.body)
	}
}

// cookie returns the value of the named cookie the jar holds for host.
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.url("/admin/"))
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.url("/"))
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func wantCode(t *testing.T, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body:\n%s", r.code, code, r.body)
	}
}

func wantBody(t *testing.T, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("page lacks %q; body:\n%s", s, r.body)
		}
	}
}

func wantNoBody(t *testing.T, r response, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(r.body, s) {
			t.Errorf("page contains %q; body:\n%s", s, r.body)
		}
	}
}

// postMultipart posts fields (and a file, when fileField is set) as
// multipart/form-data.
func (b *browser) postMultipart(path string, fields map[string]string, fileField, content string) response {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if fileField != "" {
		fw, err := mw.CreateFormFile(fileField, "students.csv")
		if err != nil {
			b.t.Fatal(err)
		}
		io.WriteString(fw, content)
	}
	mw.Close()
	req, err := http.NewRequest("POST", b.url(path), &buf)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// regexpValue returns the value attribute of the input named name.
func regexpValue(t *testing.T, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no input %q in page:\n%s", name, body)
	}
	return html.UnescapeString(m[1])
}

// metric returns the value of the series of name whose labels include
// want (a counter, gauge or a histogram's sample count), and whether it
// exists.
func (e *env) metric(name string, want map[string]string) (float64, bool) {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func (e *env) loginFailures() float64 {
	v, _ := e.metric(MetricLoginFailures, map[string]string{"tenant": e.tenant.Name})
	return v
}
