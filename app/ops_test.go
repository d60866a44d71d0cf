package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

func TestMisdirectedRequests(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	newEnv(t, "beta", envOptions{}) // a real neighbour, for realism
	tests := []struct {
		name   string
		host   string
		path   string
		header string // X-Campus-Tenant
		want   int
	}{
		{"own host", "alpha.school.localhost", "/", "", http.StatusOK},
		{"own second host", "www.alpha.example", "/", "", http.StatusOK},
		{"own host, port and case", "ALPHA.School.Localhost.:8000", "/", "", http.StatusOK},
		{"own host, own tenant header", "alpha.school.localhost", "/", "alpha", http.StatusOK},
		{"another tenant's host", "beta.school.localhost", "/", "", http.StatusMisdirectedRequest},
		{"another tenant's host, admin", "beta.school.localhost", "/admin/login/", "", http.StatusMisdirectedRequest},
		{"unknown host", "evil.example", "/static/bootstrap.min.css", "", http.StatusMisdirectedRequest},
		{"IP address", "127.0.0.1", "/", "", http.StatusMisdirectedRequest},
		{"own host, other tenant header", "alpha.school.localhost", "/", "beta", http.StatusMisdirectedRequest},
		{"own host, other tenant header, admin", "alpha.school.localhost", "/admin/login/", "beta", http.StatusMisdirectedRequest},
		{"probe by IP", "127.0.0.1:9999", "/healthz", "", http.StatusOK},
		{"readiness by IP", "127.0.0.1", "/readyz", "", http.StatusOK},
		{"metrics by IP", "127.0.0.1", "/metrics", "", http.StatusOK},
		{"probe with other tenant header", "127.0.0.1", "/healthz", "beta", http.StatusMisdirectedRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := a.browserAt(tc.host)
			var hdr []string
			if tc.header != "" {
				hdr = []string{TenantHeader, tc.header}
			}
			r := b.get(tc.path, hdr...)
			wantCode(t, r, tc.want)
			if tc.want == http.StatusMisdirectedRequest {
				wantBody(t, r, "Misdirected request")
				wantNoBody(t, r, "School of alpha")
			}
		})
	}
	if v, ok := a.metric(MetricRequests, map[string]string{"tenant": "alpha", "route": routeMisdirected, "code": "421"}); !ok || v < 5 {
		t.Errorf("421s counted %v (%v), want >= 5", v, ok)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browserAt("127.0.0.1")
	r := b.get("/healthz")
	wantCode(t, r, http.StatusOK)
	if strings.TrimSpace(r.body) != "ok" {
		t.Errorf("/healthz body %q", r.body)
	}
	wantCode(t, b.get("/readyz"), http.StatusOK)

	// An unmigrated database: not ready, and says why.
	fresh := newEnv(t, "fresh", envOptions{noMigrate: true})
	r = fresh.browserAt("127.0.0.1").get("/readyz")
	wantCode(t, r, http.StatusServiceUnavailable)
	wantBody(t, r, "not migrated")
	wantCode(t, fresh.browserAt("127.0.0.1").get("/healthz"), http.StatusOK)
	if !strings.Contains(fresh.logs.String(), "not ready") {
		t.Error("an unready database is not logged")
	}
}

func TestReadinessSchemaTooNew(t *testing.T) {
	db := mongotest.Database(t)
	ctx := context.Background()
	st := store.New(db, store.Options{})
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// What a newer binary's migration would leave behind.
	setSchemaVersion(t, db, store.SchemaVersion+1)
	tenant, _ := registry.NewTenant("acme", []string{"acme.school.localhost"}, "")
	h, err := NewServer(Config{Tenant: tenant, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "newer") {
		t.Fatalf("readyz with a newer schema: %d %q", rec.Code, rec.Body.String())
	}
}

func setSchemaVersion(t *testing.T, db *mongo.Database, v int) {
	t.Helper()
	_, err := db.Collection("meta").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "schema"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: v}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("M-1", "Metric", "One")
	b := e.browser()
	b.get("/")
	b.get("/")
	b.get("/no/such/page")
	b.tryLogin(testUser, "wrong-password-1")
	b.login()
	b.follow(b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"M-2"}, "first_name": {"Metric"}, "second_name": {"Two"}}))

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{MetricRequests, map[string]string{"tenant": "acme", "route": "GET /{$}", "code": "200"}, 2},
		{MetricRequests, map[string]string{"tenant": "acme", "route": routeNotFound, "code": "404"}, 1},
		{MetricRequests, map[string]string{"tenant": "acme", "route": "POST /admin/students/add/{$}", "code": "303"}, 1},
		{MetricRequestDuration, map[string]string{"tenant": "acme", "route": "GET /{$}"}, 2},
		{MetricLoginFailures, map[string]string{"tenant": "acme"}, 1},
		{MetricStudents, map[string]string{"tenant": "acme"}, 2},
	}
	for _, c := range checks {
		got, ok := e.metric(c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Served on /metrics, every series with the tenant label.
	r := e.browserAt("127.0.0.1").get("/metrics")
	wantCode(t, r, http.StatusOK)
	for _, l := range strings.Split(r.body, "\n") {
		if strings.HasPrefix(l, "campus_app_") && !strings.Contains(l, `tenant="acme"`) {
			t.Errorf("series without the tenant label: %s", l)
		}
	}
	wantBody(t, r, MetricRequests, MetricRequestDuration+"_bucket", MetricStudents, MetricLoginFailures)
}

func TestStudentsGaugeThrottled(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	b.get("/?q=x") // a search: refreshes the stale gauge by counting
	if v, _ := e.metric(MetricStudents, nil); v != 0 {
		t.Fatalf("gauge %v", v)
	}
	e.addStudent("G-1", "Gauge", "One") // behind the app's back
	b.get("/?q=x")
	if v, _ := e.metric(MetricStudents, nil); v != 0 {
		t.Fatalf("gauge refreshed within 30s: %v", v)
	}
	e.clock.Add(31 * time.Second)
	b.get("/?q=x")
	if v, _ := e.metric(MetricStudents, nil); v != 1 {
		t.Fatalf("gauge not refreshed after 30s: %v", v)
	}
}

func TestTwoTenantsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, name := range []string{"one", "two"} {
		tenant, _ := registry.NewTenant(name, []string{name + ".school.localhost"}, "")
		st := store.New(mongotest.Database(t), store.Options{})
		if _, err := NewServer(Config{Tenant: tenant, Store: st, Registerer: reg}); err != nil {
			t.Fatalf("tenant %s: %v", name, err)
		}
	}
	// The same tenant twice is a wiring mistake, reported.
	tenant, _ := registry.NewTenant("one", []string{"one.school.localhost"}, "")
	if _, err := NewServer(Config{Tenant: tenant, Store: store.New(mongotest.Database(t), store.Options{}), Registerer: reg}); err == nil {
		t.Fatal("registered tenant one's metrics twice")
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	for _, path := range []string{"/", "/admin/login/", "/no/such/page"} {
		r := b.get(path)
		h := r.header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
		if h.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", path)
		}
		// No inline script: every <script> has a src.
		if strings.Contains(r.body, "<script>") {
			t.Errorf("%s: inline script", path)
		}
		if strings.Contains(r.body, "style=") {
			t.Errorf("%s: inline style (blocked by the CSP)", path)
		}
	}
	if got := b.get("/admin/login/").header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("admin Cache-Control %q", got)
	}
	// A sane request id from the proxy is kept; a hostile one replaced.
	if got := b.get("/", "X-Request-Id", "abc-123").header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("request id %q", got)
	}
	if got := b.get("/", "X-Request-Id", "a b\"<>").header.Get("X-Request-Id"); got == "a b\"<>" || got == "" {
		t.Errorf("request id %q", got)
	}
}

func TestSecureCookies(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	r := b.get("/admin/login/", "X-Forwarded-Proto", "https")
	if c := findSetCookie(r, csrfCookie); c == nil || !c.Secure {
		t.Errorf("behind TLS, cookie not Secure: %+v", c)
	}
	r = e.browser().get("/admin/login/")
	if c := findSetCookie(r, csrfCookie); c == nil || c.Secure {
		t.Errorf("plain HTTP, cookie Secure: %+v", c)
	}
}

func TestStaticFiles(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	b := e.browser()
	page := b.get("/")
	i := strings.Index(page.body, "/static/bootstrap.min.css?v=")
	if i < 0 {
		t.Fatalf("page does not link the embedded Bootstrap:\n%s", page.body)
	}
	link := page.body[i:]
	link = link[:strings.IndexByte(link, '"')]
	r := b.get(link)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Bootstrap  v5.3.8", "Licensed under MIT")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned URL Cache-Control %q", cc)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r = b.get("/static/bootstrap.min.css", "If-None-Match", etag)
	wantCode(t, r, http.StatusNotModified)
	if cc := r.header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("unversioned URL Cache-Control %q", cc)
	}
	wantCode(t, b.get("/static/nope.css"), http.StatusNotFound)
	for name, want := range map[string]string{"bootstrap.min.css": "text/css; charset=utf-8", "app.css": "text/css; charset=utf-8",
		"app.js": "text/javascript; charset=utf-8", "bootstrap-LICENSE.txt": "text/plain; charset=utf-8"} {
		r := b.get("/static/" + name)
		wantCode(t, r, http.StatusOK)
		if ct := r.header.Get("Content-Type"); ct != want {
			t.Errorf("%s: Content-Type %q, want %q", name, ct, want)
		}
	}
	if strings.Contains(page.body, "//cdn") || strings.Contains(page.body, "https://") {
		t.Error("the page refers to another site")
	}
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	logs := &syncBuffer{}
	s, err := newServer(Config{Tenant: e.tenant, Store: e.store, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := s.observe(s.routeAs("boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://acme.school.localhost/", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "Server error") {
		t.Fatalf("panic gave %d:\n%s", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}

func TestNewServerValidatesConfig(t *testing.T) {
	tenant, _ := registry.NewTenant("acme", []string{"acme.school.localhost"}, "")
	if _, err := NewServer(Config{Tenant: tenant}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := NewServer(Config{Tenant: registry.Tenant{Name: "acme"}, Store: &store.Store{}}); err == nil {
		t.Error("a tenant without hosts accepted")
	}
}

// TestHostsFollowTheRecord: a host added to the tenant while the app runs
// is answered, a removed one gets 421, and a record of another tenant (a
// neighbour's, or this name re-created with another ID) changes nothing.
func TestHostsFollowTheRecord(t *testing.T) {
	var cur atomic.Pointer[registry.Tenant]
	a := newEnv(t, "alpha", envOptions{hosts: func() registry.Tenant { return *cur.Load() }})
	start := a.tenant
	cur.Store(&start)
	const custom = "records.alpha.example"
	served := func(host string) int { return a.browserAt(host).get("/").code }

	if got := served(custom); got != http.StatusMisdirectedRequest {
		t.Fatalf("custom host before host add: %d, want 421", got)
	}
	added := start
	added.Hosts = append(slices.Clone(start.Hosts), custom)
	added.DisplayName = "Alpha Academy"
	cur.Store(&added)
	r := a.browserAt(custom).get("/")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Alpha Academy")

	removed := added
	removed.Hosts = []string{start.PrimaryHost, custom}
	cur.Store(&removed)
	if got := served("www.alpha.example"); got != http.StatusMisdirectedRequest {
		t.Errorf("removed host: %d, want 421", got)
	}

	for _, foreign := range []registry.Tenant{
		{ID: "another-id", Name: "alpha", Hosts: []string{"beta.school.localhost"}, PrimaryHost: "beta.school.localhost"},
		{ID: start.ID, Name: "beta", Hosts: []string{"beta.school.localhost"}, PrimaryHost: "beta.school.localhost"},
	} {
		cur.Store(&foreign)
		if got := served("beta.school.localhost"); got != http.StatusMisdirectedRequest {
			t.Errorf("record of %s/%s: another school's host answered %d, want 421", foreign.Name, foreign.ID, got)
		}
		if got := served(start.PrimaryHost); got != http.StatusOK {
			t.Errorf("record of %s/%s: own primary host %d, want 200 (start-up hosts kept)", foreign.Name, foreign.ID, got)
		}
	}
}

// TestReadinessReasons: /readyz reads the schema version once; when that
// fails it tells an unreachable database from a failed schema check.
func TestReadinessReasons(t *testing.T) {
	cases := []struct {
		name string
		// store returns the app's store over db, migrated.
		store func(t *testing.T, db *mongo.Database) *store.Store
		code  int
		body  string
	}{
		{"ready", func(t *testing.T, db *mongo.Database) *store.Store { return store.New(db, store.Options{}) }, http.StatusOK, "ready"},
		{"unreachable", func(t *testing.T, db *mongo.Database) *store.Store {
			client, err := mongo.Connect(options.Client().ApplyURI(mongotest.URI(t)))
			if err != nil {
				t.Fatal(err)
			}
			client.Disconnect(context.Background())
			return store.New(client.Database(db.Name()), store.Options{})
		}, http.StatusServiceUnavailable, "database unreachable"},
		{"unreadable schema version", func(t *testing.T, db *mongo.Database) *store.Store {
			if _, err := db.Collection("meta").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "schema"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: "four"}}}}); err != nil {
				t.Fatal(err)
			}
			return store.New(db, store.Options{})
		}, http.StatusServiceUnavailable, "schema check failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := mongotest.Database(t)
			if _, _, err := store.New(db, store.Options{}).Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			tenant, _ := registry.NewTenant("acme", []string{"acme.school.localhost"}, "")
			h, err := NewServer(Config{Tenant: tenant, Store: c.store(t, db), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/readyz", nil))
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.body) {
				t.Errorf("readyz: %d %q, want %d %q", rec.Code, rec.Body.String(), c.code, c.body)
			}
		})
	}
}
