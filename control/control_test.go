package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/control"
	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

var aclAgent = &engines.Shared{Options: engines.ConsulOptions{ACL: true}}

func TestMain(m *testing.M) {
	code := m.Run()
	aclAgent.Stop()
	if err := mongotest.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// world is a control server over a registry and the test database
// server, with a read-write and a read-only operator token.
type world struct {
	t        *testing.T
	reg      control.Registry
	srv      *httptest.Server
	m        *tenancy.Manager
	rw, ro   string // operator tokens
	rwID     string
	names    []string
	students []string // names of students written into schools, which no answer may show
}

func newWorld(t *testing.T, reg control.Registry, creds tenancy.Credentials) *world {
	t.Helper()
	w := &world{t: t, reg: reg}
	w.m = &tenancy.Manager{Registry: reg, Database: tenancy.DatabaseAddress{URI: mongotest.URI(t)}, Credentials: creds}
	w.restart()
	w.rw, w.rwID = w.token("ops-rw", false)
	w.ro, _ = w.token("ops-ro", true)
	return w
}

// restart replaces the control server with a new one (nothing in
// memory) on the same registry and database.
func (w *world) restart() {
	if w.srv != nil {
		w.srv.Close()
	}
	s := &control.Server{Manager: w.m, Registry: w.reg, Public: tenancy.PublicURL{Scheme: "http", Port: "8000"},
		Logger: slog.New(slog.DiscardHandler)}
	w.srv = httptest.NewServer(s)
	w.t.Cleanup(w.srv.Close)
}

func newEmbedded(t *testing.T) *world {
	t.Helper()
	t.Parallel()
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return newWorld(t, reg, nil)
}

func (w *world) token(name string, readOnly bool) (string, string) {
	w.t.Helper()
	name += "-" + strings.TrimPrefix(mongotest.NewName(w.t), "t_")[:8]
	tok, rec, err := registry.NewOperatorToken(name, readOnly)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.reg.CreateOperatorToken(context.Background(), rec); err != nil {
		w.t.Fatal(err)
	}
	return tok, rec.ID
}

// name is a school name no other test uses; its database is dropped at
// the end.
func (w *world) name() string {
	n := "c" + strings.TrimPrefix(mongotest.NewName(w.t), "t_")[:12]
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mongotest.Client(w.t).Database(n).Drop(ctx)
	})
	w.names = append(w.names, n)
	return n
}

type answer struct {
	code   int
	body   []byte
	header http.Header
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", a.code, err, a.body)
	}
}

// call makes one API request with token (none when ""); body is JSON
// unless it is a []byte.
func (w *world) call(token, method, path string, body any, header ...string) answer {
	w.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, w.srv.URL+control.APIPrefix+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{resp.StatusCode, b, resp.Header}
	w.noSecrets(method+" "+path, a.body)
	return a
}

// noSecrets fails when an answer shows anything of a school's database.
func (w *world) noSecrets(what string, body []byte) {
	w.t.Helper()
	for _, s := range append([]string{"$2a$", "$2b$", "password_hash", "head-of-school@", "headmaster"}, w.students...) {
		if bytes.Contains(body, []byte(s)) {
			w.t.Errorf("%s: the answer shows %q:\n%s", what, s, body)
		}
	}
}

// lastAudit is the newest audit entry of the registry.
func (w *world) lastAudit() registry.AuditEntry {
	w.t.Helper()
	es, err := w.reg.Audit(context.Background(), registry.AuditQuery{Limit: 1})
	if err != nil || len(es) == 0 {
		w.t.Fatalf("audit: %v, %d entries", err, len(es))
	}
	return es[0]
}

// expect makes a call with the read-write token, checks its status and
// that exactly its audit entry was written.
func (w *world) expect(want int, action, target, method, path string, body any, header ...string) answer {
	w.t.Helper()
	a := w.call(w.rw, method, path, body, header...)
	if a.code != want {
		w.t.Fatalf("%s %s: %d, want %d\n%s", method, path, a.code, want, a.body)
	}
	e := w.lastAudit()
	outcome := registry.OutcomeOK
	if want >= 400 {
		outcome = registry.OutcomeRefused
	}
	if e.Action != action || e.Target != target || e.Status != want || e.Outcome != outcome || e.TokenID != w.rwID || !strings.HasPrefix(e.Operator, "ops-rw-") {
		w.t.Errorf("%s %s: audit entry %+v, want %s of %q, %d %s by ops-rw", method, path, e, action, target, want, outcome)
	}
	return a
}

func newSchool(name string) control.CreateRequest {
	return control.CreateRequest{Name: name, Hosts: []string{name + ".school.localhost"}, Superuser: "headmaster", Email: "head-of-school@example.org"}
}

// addStudent writes a student straight into the school's database.
func (w *world) addStudent(t registry.Tenant) {
	w.t.Helper()
	first := "Zebedee" + t.Name[1:6]
	st := store.New(mongotest.Client(w.t).Database(t.Database), store.Options{})
	if _, err := st.CreateStudent(context.Background(), store.StudentInput{RegistrationNo: "R/" + t.Name, FirstName: first, SecondName: "Quux"}); err != nil {
		w.t.Fatal(err)
	}
	w.students = append(w.students, first)
}

func TestEveryEndpoint(t *testing.T) {
	w := newEmbedded(t)
	a, b := w.name(), w.name()

	// create
	var created control.Created
	w.expect(http.StatusCreated, "schools.create", a, "POST", "/schools", newSchool(a)).json(t, &created)
	if created.School.State != registry.StateActive || created.School.ID == "" {
		t.Fatalf("created %+v", created.School)
	}
	inv, err := url.Parse(created.InviteURL)
	if err != nil || inv.Host != a+".school.localhost:8000" || inv.Path != "/admin/password-reset/" || inv.Query().Get("token") == "" {
		t.Errorf("invite URL %q", created.InviteURL)
	}
	st := store.New(mongotest.Client(t).Database(a), store.Options{})
	if u, err := st.ResetTokenUser(t.Context(), inv.Query().Get("token")); err != nil || u.Username != "headmaster" || !u.IsSuperuser {
		t.Errorf("the invite resets %+v, %v; want the superuser headmaster", u, err)
	}
	w.addStudent(created.School.Tenant)
	w.expect(http.StatusConflict, "schools.create", a, "POST", "/schools", newSchool(a))
	bad := newSchool(b)
	bad.Hosts = []string{a + ".school.localhost"}
	w.expect(http.StatusConflict, "schools.create", b, "POST", "/schools", bad)
	bad = newSchool("Not A Name")
	w.expect(http.StatusUnprocessableEntity, "schools.create", "Not A Name", "POST", "/schools", bad)
	w.expect(http.StatusBadRequest, "schools.create", "", "POST", "/schools", []byte(`{"name": "x", "typo": 1}`))
	w.expect(http.StatusCreated, "schools.create", b, "POST", "/schools", newSchool(b))

	// list, show
	var list control.SchoolList
	w.expect(http.StatusOK, "schools.list", "", "GET", "/schools", nil).json(t, &list)
	if list.Total != 2 || len(list.Schools) != 2 || list.Schools[0].Name != min(a, b) {
		t.Errorf("list: %+v", list)
	}
	w.expect(http.StatusOK, "schools.list", "", "GET", "/schools?limit=1", nil).json(t, &list)
	if len(list.Schools) != 1 || list.Next != list.Schools[0].Name || list.Total != 2 {
		t.Errorf("first page of 1: %+v", list)
	}
	after := list.Next
	list = control.SchoolList{}
	w.expect(http.StatusOK, "schools.list", "", "GET", "/schools?limit=1&after="+after, nil).json(t, &list)
	if len(list.Schools) != 1 || list.Schools[0].Name != max(a, b) || list.Next != "" {
		t.Errorf("second page: %+v", list)
	}
	w.expect(http.StatusUnprocessableEntity, "schools.list", "", "GET", "/schools?state=sleeping", nil)
	var d control.SchoolDetail
	w.expect(http.StatusOK, "schools.show", a, "GET", "/schools/"+a, nil).json(t, &d)
	if d.ID != created.School.ID || len(d.Stats.Requests) != control.Slots || d.Instances == nil {
		t.Errorf("show: %+v", d)
	}
	w.expect(http.StatusNotFound, "schools.show", "nosuch", "GET", "/schools/nosuch", nil)

	// set
	var sc control.School
	w.expect(http.StatusOK, "schools.set", a, "PATCH", "/schools/"+a, map[string]string{"idle_timeout": "10m", "memory": "512MiB"}).json(t, &sc)
	if sc.IdleTimeout != "10m0s" || sc.Memory != "512MiB" {
		t.Errorf("set: %+v", sc.Tenant)
	}
	w.expect(http.StatusUnprocessableEntity, "schools.set", a, "PATCH", "/schools/"+a, map[string]string{"idle_timeout": "10m", "memory": "lots"})
	if tn, _ := w.reg.Tenant(t.Context(), a); tn.IdleTimeout != "10m0s" {
		t.Errorf("a refused set changed the idle timeout: %+v", tn)
	}
	w.expect(http.StatusNotFound, "schools.set", "nosuch", "PATCH", "/schools/nosuch", map[string]string{"memory": "1GiB"})

	// hosts
	w.expect(http.StatusOK, "schools.host_add", a, "POST", "/schools/"+a+"/hosts", map[string]string{"host": "records." + a + ".example"}).json(t, &sc)
	if len(sc.Hosts) != 2 {
		t.Errorf("host add: %v", sc.Hosts)
	}
	w.expect(http.StatusConflict, "schools.host_add", b, "POST", "/schools/"+b+"/hosts", map[string]string{"host": "records." + a + ".example"})
	w.expect(http.StatusOK, "schools.host_remove", a, "DELETE", "/schools/"+a+"/hosts/records."+a+".example", nil)
	w.expect(http.StatusUnprocessableEntity, "schools.host_remove", a, "DELETE", "/schools/"+a+"/hosts/"+a+".school.localhost", nil)

	// suspend, resume
	w.expect(http.StatusOK, "schools.suspend", a, "POST", "/schools/"+a+"/suspend", nil).json(t, &sc)
	if sc.State != registry.StateSuspended {
		t.Errorf("suspend: %s", sc.State)
	}
	w.expect(http.StatusOK, "schools.resume", a, "POST", "/schools/"+a+"/resume", nil).json(t, &sc)
	if sc.State != registry.StateActive {
		t.Errorf("resume: %s", sc.State)
	}
	w.expect(http.StatusNotFound, "schools.suspend", "nosuch", "POST", "/schools/nosuch/suspend", nil)

	// backup out
	arch := w.expect(http.StatusOK, "backups.download", a, "GET", "/schools/"+a+"/backup", nil)
	if !strings.Contains(arch.header.Get("Content-Disposition"), a) || len(arch.body) < 100 {
		t.Errorf("backup: %v, %d bytes", arch.header, len(arch.body))
	}
	w.expect(http.StatusNotFound, "backups.download", "nosuch", "GET", "/schools/nosuch/backup", nil)

	// delete, restore, purge
	w.expect(http.StatusConflict, "schools.purge", a, "POST", "/schools/"+a+"/purge", nil)
	w.expect(http.StatusConflict, "schools.restore", a, "POST", "/schools/"+a+"/restore", nil)
	w.expect(http.StatusOK, "schools.delete", a, "DELETE", "/schools/"+a, nil).json(t, &sc)
	if sc.State != registry.StateDeleted || (sc.PurgeAfter.Sub(sc.DeletedAt)-control.DefaultRetention).Abs() > time.Second {
		t.Errorf("delete: %+v", sc.Tenant)
	}
	w.expect(http.StatusConflict, "schools.delete", a, "DELETE", "/schools/"+a, nil)
	w.expect(http.StatusConflict, "schools.resume", a, "POST", "/schools/"+a+"/resume", nil)
	w.expect(http.StatusOK, "schools.restore", a, "POST", "/schools/"+a+"/restore", nil).json(t, &sc)
	if sc.State != registry.StateActive || sc.ID != created.School.ID {
		t.Errorf("restore: %+v", sc.Tenant)
	}
	w.expect(http.StatusUnprocessableEntity, "schools.delete", a, "DELETE", "/schools/"+a+"?retention=soon", nil)
	w.expect(http.StatusOK, "schools.delete", a, "DELETE", "/schools/"+a+"?retention=1h", nil)
	w.expect(http.StatusNoContent, "schools.purge", a, "POST", "/schools/"+a+"/purge", nil)
	w.expect(http.StatusNotFound, "schools.purge", a, "POST", "/schools/"+a+"/purge", nil)

	// restore from an upload: the archive streamed out brings back the
	// same school, same ID, with its student
	w.expect(http.StatusUnprocessableEntity, "backups.restore", "", "POST", "/backups/restore", []byte("not an archive"))
	if _, err := w.reg.Tenant(t.Context(), a); err == nil {
		t.Error("a refused upload created the school")
	}
	var restored struct {
		School   control.School `json:"school"`
		SourceID string         `json:"source_id"`
	}
	w.expect(http.StatusCreated, "backups.restore", a, "POST", "/backups/restore", arch.body).json(t, &restored)
	if restored.School.ID != created.School.ID || restored.School.Name != a || restored.SourceID != created.School.ID {
		t.Errorf("restored %+v from %s, want ID %s", restored.School.Tenant, restored.SourceID, created.School.ID)
	}
	if n, err := st.CountStudents(t.Context()); err != nil || n != 1 {
		t.Errorf("restored school has %d students, %v; want 1", n, err)
	}
	w.expect(http.StatusConflict, "backups.restore", "", "POST", "/backups/restore", arch.body)
	cut := arch.body[:len(arch.body)/2]
	w.expect(http.StatusUnprocessableEntity, "backups.restore", "copy-"+a[:8], "POST", "/backups/restore?as=copy-"+a[:8]+"&host=copy-"+a[:8]+".school.localhost", cut)
	if _, err := w.reg.Tenant(t.Context(), "copy-"+a[:8]); err == nil {
		t.Error("a truncated archive was restored")
	}

	// audit list
	var audit struct {
		Entries []registry.AuditEntry `json:"entries"`
		Next    string                `json:"next"`
	}
	w.expect(http.StatusOK, "audit.list", "", "GET", "/audit?school="+a+"&limit=3", nil).json(t, &audit)
	if len(audit.Entries) != 3 || audit.Next == "" || audit.Entries[0].Action != "backups.restore" {
		t.Errorf("audit page: %+v", audit)
	}
	w.expect(http.StatusUnprocessableEntity, "audit.list", "", "GET", "/audit?limit=0", nil)

	// no token, unknown endpoint, OpenAPI
	if a := w.call("", "GET", "/schools", nil); a.code != http.StatusUnauthorized {
		t.Errorf("no token: %d", a.code)
	}
	if a := w.call(w.rw, "GET", "/nothing", nil); a.code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d", a.code)
	}
}

func TestIdempotentCreate(t *testing.T) {
	w := newEmbedded(t)
	n := w.name()
	key := "retry-" + n
	first := w.call(w.rw, "POST", "/schools", newSchool(n), "Idempotency-Key", key)
	if first.code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.code, first.body)
	}
	// A retried request (the answer was lost): the same answer, nothing new.
	var wg sync.WaitGroup
	answers := make([]answer, 4)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = w.call(w.rw, "POST", "/schools", newSchool(n), "Idempotency-Key", key)
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.code != http.StatusCreated || !bytes.Equal(a.body, first.body) || a.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry %d: %d %s (replayed %q), want the first answer again", i, a.code, a.body, a.header.Get("Idempotent-Replayed"))
		}
	}
	all, _ := w.reg.Tenants(t.Context())
	if len(all) != 1 {
		t.Errorf("%d schools after retries, want 1", len(all))
	}
	// The same key with another body is refused and creates nothing.
	other := w.name()
	if a := w.call(w.rw, "POST", "/schools", newSchool(other), "Idempotency-Key", key); a.code != http.StatusUnprocessableEntity {
		t.Errorf("key reused for another school: %d %s", a.code, a.body)
	}
	if _, err := w.reg.Tenant(t.Context(), other); err == nil {
		t.Error("the reused key created a school")
	}
	// A new key for the same name is a new request: the name is taken.
	if a := w.call(w.rw, "POST", "/schools", newSchool(n), "Idempotency-Key", key+"-2"); a.code != http.StatusConflict {
		t.Errorf("a new key for an existing name: %d, want 409", a.code)
	}

	// The control server restarted (a new one on the same registry): the
	// retry is found in the audit trail and creates nothing.
	var firstCreated control.Created
	first.json(t, &firstCreated)
	w.restart()
	again := w.call(w.rw, "POST", "/schools", newSchool(n), "Idempotency-Key", key)
	var replayed control.Created
	again.json(t, &replayed)
	if again.code != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || replayed.School.ID != firstCreated.School.ID ||
		replayed.InviteURL != "" || !strings.Contains(replayed.Note, "resetlink") {
		t.Errorf("retry after a restart: %d %s", again.code, again.body)
	}
	if a := w.call(w.rw, "POST", "/schools", newSchool(other), "Idempotency-Key", key); a.code != http.StatusUnprocessableEntity {
		t.Errorf("key reused for another school after a restart: %d %s", a.code, a.body)
	}
	if all, _ := w.reg.Tenants(t.Context()); len(all) != 1 {
		t.Errorf("%d schools after retries across a restart, want 1", len(all))
	}
	// Another operator's token with the same key is another request.
	tok, _ := w.token("other-op", false)
	if a := w.call(tok, "POST", "/schools", newSchool(n), "Idempotency-Key", key); a.code != http.StatusConflict {
		t.Errorf("another token's same key: %d, want 409 (a new create of a taken name)", a.code)
	}
}

func TestConcurrentCreatesOfOneName(t *testing.T) {
	w := newEmbedded(t)
	n := w.name()
	const racers = 5
	codes := make([]int, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newSchool(n)
			req.Hosts = []string{fmt.Sprintf("%s-%d.school.localhost", n, i)}
			codes[i] = w.call(w.rw, "POST", "/schools", req, "Idempotency-Key", fmt.Sprint(i)).code
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("a racer got %d", c)
		}
	}
	if won != 1 {
		t.Errorf("%d creates won (codes %v), want exactly 1", won, codes)
	}
	tn, err := w.reg.Tenant(t.Context(), n)
	if err != nil || tn.State != registry.StateActive || len(tn.Hosts) != 1 {
		t.Errorf("the winner: %+v, %v", tn, err)
	}
}

// writes are every write endpoint with a request that would succeed.
func writes(name string) [][3]any {
	return [][3]any{
		{"POST", "/schools", newSchool(name + "x")},
		{"PATCH", "/schools/" + name, map[string]string{"memory": "1GiB"}},
		{"DELETE", "/schools/" + name, nil},
		{"POST", "/schools/" + name + "/suspend", nil},
		{"POST", "/schools/" + name + "/resume", nil},
		{"POST", "/schools/" + name + "/restore", nil},
		{"POST", "/schools/" + name + "/purge", nil},
		{"POST", "/schools/" + name + "/hosts", map[string]string{"host": "more." + name + ".example"}},
		{"DELETE", "/schools/" + name + "/hosts/" + name + ".school.localhost", nil},
		{"POST", "/backups/restore", []byte("x")},
	}
}

func reads(name string) [][3]any {
	return [][3]any{
		{"GET", "/schools", nil},
		{"GET", "/schools/" + name, nil},
		{"GET", "/schools/" + name + "/backup", nil},
		{"GET", "/audit", nil},
	}
}

func TestReadOnlyTokenRefusedEveryWrite(t *testing.T) {
	w := newEmbedded(t)
	n := w.name()
	w.expect(http.StatusCreated, "schools.create", n, "POST", "/schools", newSchool(n))
	before, _ := w.reg.Tenant(t.Context(), n)
	ws := writes(n)
	if len(ws)+len(reads(n)) != control.RouteCount() {
		t.Fatalf("the test covers %d routes, the API has %d", len(ws)+len(reads(n)), control.RouteCount())
	}
	for _, c := range ws {
		a := w.call(w.ro, c[0].(string), c[1].(string), c[2])
		if a.code != http.StatusForbidden {
			t.Errorf("read-only %s %s: %d, want 403", c[0], c[1], a.code)
		}
		if e := w.lastAudit(); e.Outcome != registry.OutcomeRefused || e.Status != http.StatusForbidden || !strings.HasPrefix(e.Operator, "ops-ro-") {
			t.Errorf("read-only %s %s: audit %+v", c[0], c[1], e)
		}
	}
	after, _ := w.reg.Tenant(t.Context(), n)
	all, _ := w.reg.Tenants(t.Context())
	if !after.Equal(before) || len(all) != 1 {
		t.Errorf("read-only writes changed the registry: %+v → %+v, %d schools", before, after, len(all))
	}
	for _, c := range reads(n) {
		if a := w.call(w.ro, c[0].(string), c[1].(string), c[2]); a.code != http.StatusOK {
			t.Errorf("read-only %s %s: %d, want 200", c[0], c[1], a.code)
		}
	}
}

func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	w := newEmbedded(t)
	tok, id := w.token("leaver", false)
	if a := w.call(tok, "GET", "/schools", nil); a.code != http.StatusOK {
		t.Fatalf("live token: %d", a.code)
	}
	cookie := consoleLogin(t, w, tok)
	if code := consoleGet(t, w, cookie, control.ConsolePrefix); code != http.StatusOK {
		t.Fatalf("console with a live token: %d", code)
	}
	if _, err := w.reg.RevokeOperatorToken(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(reads("x"), writes("x")...) {
		if a := w.call(tok, c[0].(string), c[1].(string), c[2]); a.code != http.StatusUnauthorized {
			t.Errorf("revoked token %s %s: %d, want 401", c[0], c[1], a.code)
		}
	}
	if code := consoleGet(t, w, cookie, control.ConsolePrefix); code != http.StatusSeeOther {
		t.Errorf("console session of a revoked token: %d, want a redirect to log in", code)
	}
	// A token that is right but for one character is refused too.
	bad := w.rw[:len(w.rw)-1] + string("AB"[strings.IndexByte("AB", w.rw[len(w.rw)-1])+1&1])
	if a := w.call(bad, "GET", "/schools", nil); a.code != http.StatusUnauthorized {
		t.Errorf("altered token: %d", a.code)
	}
}

// TestForeignCredentialsRefused: on a Consul registry with ACLs, what
// other parties hold — a school's Consul token, a proxy's Consul token, a
// school admin's session cookie — opens no endpoint, however it is sent.
func TestForeignCredentialsRefused(t *testing.T) {
	t.Parallel()
	a := aclAgent.Get(t)
	w := newConsulWorld(t, a)
	n := w.name()
	var created control.Created
	w.expect(http.StatusCreated, "schools.create", n, "POST", "/schools", newSchool(n)).json(t, &created)
	schoolToken, proxyToken := w.consulTokens(n)

	// A school admin's session: the superuser of the school, logged in.
	st := store.New(mongotest.Client(t).Database(n), store.Options{})
	inv, _ := url.Parse(created.InviteURL)
	u, err := st.ResetPassword(t.Context(), inv.Query().Get("token"), "a-long-password-1")
	if err != nil {
		t.Fatal(err)
	}
	session, _, err := st.CreateSession(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	before := w.auditCount()
	for _, cred := range []struct{ what, token string }{{"school's Consul token", schoolToken}, {"proxy's Consul token", proxyToken}, {"school admin's session", session}} {
		for _, c := range append(reads(n), writes(n)...) {
			for _, how := range [][]string{
				{"Authorization", "Bearer " + cred.token},
				{"X-Consul-Token", cred.token},
				{"Cookie", "campus_session=" + cred.token},
				{"Cookie", "campus_console=" + cred.token},
			} {
				ans := w.call("", c[0].(string), c[1].(string), c[2], how...)
				if ans.code != http.StatusUnauthorized {
					t.Errorf("%s as %s: %s %s answered %d, want 401", cred.what, how[0], c[0], c[1], ans.code)
				}
			}
			if code := consoleGet(t, w, &http.Cookie{Name: "campus_console", Value: cred.token}, control.ConsolePrefix+"schools/"+n); code != http.StatusSeeOther {
				t.Errorf("%s as the console's cookie: %d", cred.what, code)
			}
		}
	}
	if tn, err := w.reg.Tenant(t.Context(), n); err != nil || tn.State != registry.StateActive || tn.Memory != "" {
		t.Errorf("the school changed: %+v, %v", tn, err)
	}
	if w.auditCount() != before {
		t.Error("refused credentials wrote audit entries as somebody")
	}
}

func (w *world) auditCount() int {
	es, err := w.reg.Audit(context.Background(), registry.AuditQuery{})
	if err != nil {
		w.t.Fatal(err)
	}
	return len(es)
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, routes := control.OpenAPIOperations(), control.Routes()
	for op := range routes {
		if !doc[op] {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	for op := range doc {
		if !routes[op] {
			t.Errorf("openapi.yaml documents %s, which the handler does not serve", op)
		}
	}
	if len(routes) != control.RouteCount() {
		t.Errorf("%d routes, %d distinct", control.RouteCount(), len(routes))
	}
}

func consoleLogin(t *testing.T, w *world, token string) *http.Cookie {
	t.Helper()
	resp, err := w.srv.Client().Get(w.srv.URL + control.ConsolePrefix + "login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "campus_console_csrf" {
			csrf = c
		}
	}
	if csrf == nil {
		t.Fatal("no CSRF cookie on the log-in form")
	}
	req, _ := http.NewRequest("POST", w.srv.URL+control.ConsolePrefix+"login", strings.NewReader(url.Values{"token": {token}, "csrf_token": {csrf.Value}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(csrf)
	resp, err = noRedirect(w).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "campus_console" {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax", c)
			}
			return c
		}
	}
	t.Fatalf("log-in: %d, no session cookie", resp.StatusCode)
	return nil
}

func noRedirect(w *world) *http.Client {
	c := *w.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func consoleGet(t *testing.T, w *world, cookie *http.Cookie, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", w.srv.URL+path, nil)
	req.AddCookie(cookie)
	resp, err := noRedirect(w).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	w.noSecrets("console "+path, b)
	return resp.StatusCode
}

// newConsulWorld is a world on a real Consul agent with ACLs (default
// deny), acting with the agent's management token as an operator's
// server does; schools get their own tokens.
func newConsulWorld(t *testing.T, a *engines.Consul) *world {
	t.Helper()
	prefix := "ctl" + strings.TrimPrefix(mongotest.NewName(t), "t_")[:8]
	reg, err := consul.New(consul.Config{API: a.Config(a.Token), Prefix: prefix + "/", ServicePrefix: prefix + "-app-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Client(a.Token).KV().DeleteTree(prefix+"/", nil)
		reg.Close()
	})
	return newWorld(t, reg, reg)
}

// consulTokens are the school's own Consul token and a proxy's.
func (w *world) consulTokens(school string) (string, string) {
	w.t.Helper()
	cr := w.reg.(*consul.Registry)
	st, err := cr.TenantToken(context.Background(), school, false)
	if err != nil {
		w.t.Fatal(err)
	}
	pt, err := cr.ProxyToken(context.Background(), consul.ProxyServiceName, true, "")
	if err != nil {
		w.t.Fatal(err)
	}
	if st == "" || pt == "" {
		w.t.Fatal("empty Consul tokens")
	}
	return st, pt
}
