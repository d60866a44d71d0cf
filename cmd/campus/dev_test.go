package main

// End-to-end tests of the whole system as `campus dev` runs it: the real
// binary, the embedded database, the supervisor's child processes and the
// proxy. Every HTTP request goes through the proxy.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/internal/systemtest"
)

// campusBin is the binary under test, built once by TestMain.
var campusBin string

func TestMain(m *testing.M) {
	bin, err := systemtest.BuildCampus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build campus:", err)
		os.Exit(1)
	}
	campusBin = bin.Path
	code := m.Run()
	bin.Remove()
	if err := mongotest.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test database:", err)
	}
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	addr := systemtest.FreeAddr(t)
	return addr[strings.LastIndexByte(addr, ':')+1:]
}

// plantedSecrets are in campus dev's environment, as they might be in an
// operator's shell.
var plantedSecrets = []string{
	"AWS_SECRET_ACCESS_KEY=planted-cloud-secret",
	"CONSUL_HTTP_TOKEN=planted-consul-token",
	"CAMPUS_PLANTED=planted-campus-setting",
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	kids, err := systemtest.Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, k := range kids {
		out = append(out, k.Pid)
	}
	return out
}

// devSystem is one running `campus dev` (systemtest.Dev) and the test
// that started it.
type devSystem struct {
	*systemtest.Dev
	t         *testing.T
	data      string
	proxyPort string
	adminAddr string
	mongoURI  string
	logs      *systemtest.Buffer
}

// startDev starts campus dev for the test with extra flags, in an
// environment holding secrets of the operator's shell, which no app child
// may inherit (TestDevEndToEnd checks). It returns once every seeded
// tenant answers through the proxy (with --tls, plain HTTP answers with a
// redirect to HTTPS); a real MongoDB in MONGODB_URI is used instead of the
// embedded one.
func startDev(t *testing.T, extra ...string) *devSystem {
	t.Helper()
	return startDevData(t, "", extra...)
}

// startDevData is startDev with its data folder in data ("": the test's
// TempDir).
func startDevData(t *testing.T, data string, extra ...string) *devSystem {
	t.Helper()
	dev := systemtest.DevForTest(t, systemtest.DevOptions{
		Bin:      campusBin,
		Data:     data,
		Args:     append([]string{"--hold-timeout", "3s"}, extra...),
		ExtraEnv: plantedSecrets,
	})
	return &devSystem{Dev: dev, t: t, data: dev.Data, proxyPort: dev.ProxyPort, adminAddr: dev.AdminAddr,
		mongoURI: dev.MongoURI, logs: dev.Buffer()}
}

// campus runs a short-lived campus command against this system.
func (d *devSystem) campus(env []string, stdin string, args ...string) (string, error) {
	cmd := d.Command(context.Background(), args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// client returns an HTTP client that sends every request to the proxy,
// whatever the host name, as a browser resolving *.localhost would.
func (d *devSystem) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, "127.0.0.1:"+d.proxyPort)
			},
			MaxIdleConnsPerHost: 16,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// url is a URL at host on the proxy's port.
func (d *devSystem) url(host, path string) string {
	return "http://" + host + ":" + d.proxyPort + path
}

// get fetches a page with an explicit Host header.
func (d *devSystem) get(c *http.Client, host, path string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+d.proxyPort+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls host through the proxy until it answers code, and returns
// how long that took; it fails the test after within or when campus dev
// exits.
func (d *devSystem) waitFor(host string, code int, within time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := d.WaitStatus(ctx, host, "/", code); err != nil {
		d.t.Fatalf("%v", err)
	}
	return time.Since(start)
}

var csrfRE = regexp.MustCompile(`name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"`)

func csrfToken(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf_token in page: %.500s", page)
	}
	if m[1] != "" {
		return m[1]
	}
	return m[2]
}

// browser is one person's session at one school.
type browser struct {
	t      *testing.T
	d      *devSystem
	c      *http.Client
	host   string
	header http.Header // sent with every request
}

func (d *devSystem) browser(host string) *browser {
	return &browser{t: d.t, d: d, c: d.client(), host: host}
}

func (b *browser) do(method, path string, form url.Values) (int, string, *http.Response) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.d.url(b.host, path), body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s%s: %v", method, b.host, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp
}

// post submits a form found at formPath with the page's CSRF token.
func (b *browser) post(formPath, action string, fields url.Values) (int, string, *http.Response) {
	b.t.Helper()
	code, page, _ := b.do(http.MethodGet, formPath, nil)
	if code != 200 {
		b.t.Fatalf("GET %s%s: %d %.300s", b.host, formPath, code, page)
	}
	if fields == nil {
		fields = url.Values{}
	}
	fields.Set("csrf_token", csrfToken(b.t, page))
	return b.do(http.MethodPost, action, fields)
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	code, page, resp := b.post("/admin/login/", "/admin/login/", url.Values{"username": {user}, "password": {password}})
	if code != http.StatusSeeOther && code != http.StatusFound {
		b.t.Fatalf("login at %s: %d %.500s", b.host, code, page)
	}
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "/login") {
		b.t.Fatalf("login at %s refused (redirected to %s)", b.host, loc)
	}
}

func (b *browser) addStudent(regNo, first, second string) {
	b.t.Helper()
	code, page, _ := b.post("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {regNo}, "first_name": {first}, "second_name": {second},
	})
	if code != http.StatusSeeOther && code != http.StatusFound {
		b.t.Fatalf("add student %s at %s: %d %.500s", regNo, b.host, code, page)
	}
}

func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test starts the whole system; skipped with -short")
	}
	d := startDev(t)
	const password = "correct-horse-battery"

	for _, tenant := range []string{"nairobi", "accra"} {
		out, err := d.campus([]string{"CAMPUS_SUPERUSER_PASSWORD=" + password}, "",
			"manage", tenant, "createsuperuser", "--username", "head-"+tenant, "--email", "head@"+tenant+".example", "--noinput")
		if err != nil {
			t.Fatalf("createsuperuser %s: %v\n%s", tenant, err, out)
		}
	}

	nairobi := d.browser("nairobi.school.localhost")
	accra := d.browser("accra.school.localhost")
	nairobi.login("head-nairobi", password)
	accra.login("head-accra", password)
	nairobi.addStudent("NRB/001", "Wanjiru", "Kamau")
	nairobi.addStudent("NRB/002", "Otieno", "Odhiambo")
	accra.addStudent("ACC/001", "Kwame", "Mensah")

	t.Run("an app child's environment holds only allowlisted variables", func(t *testing.T) {
		kids := childPIDs(t, d.Pid())
		apps := 0
		for _, pid := range kids {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			args := strings.Split(string(cmdline), "\x00")
			if len(args) < 2 || args[1] != "app" {
				continue
			}
			apps++
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil {
				t.Fatalf("read the environment of app %d: %v", pid, err)
			}
			for _, kv := range strings.Split(string(raw), "\x00") {
				name, _, _ := strings.Cut(kv, "=")
				if kv == "" || name == "MONGODB_URI" || supervisor.ChildEnvAllowed(name) {
					continue
				}
				t.Errorf("app %d (%s) inherited %s", pid, strings.Join(args[1:4], " "), name)
			}
			for _, planted := range plantedSecrets {
				if bytes.Contains(raw, []byte(planted[strings.IndexByte(planted, '=')+1:])) {
					t.Errorf("app %d has the planted %s", pid, planted)
				}
			}
			if bytes.Contains(cmdline, []byte("--data")) || bytes.Contains(cmdline, []byte("--registry")) {
				t.Errorf("app %d was handed a registry: %q", pid, args)
			}
		}
		if apps < 3 {
			t.Fatalf("found %d app children of campus dev (pid %d) among %v, want the 3 schools'", apps, d.Pid(), kids)
		}
		if !strings.Contains(d.logs.String(), "This is a development mode for one trusted machine") {
			t.Error("campus dev's start-up text does not say it is a development mode")
		}
	})

	t.Run("each school sees only its own students", func(t *testing.T) {
		cases := []struct {
			b        *browser
			path     string
			want     []string
			dontWant []string
		}{
			{nairobi, "/", []string{"NRB/001", "Wanjiru", "NRB/002"}, []string{"ACC/001", "Kwame"}},
			{nairobi, "/admin/students/", []string{"NRB/001", "Otieno"}, []string{"ACC/001", "Mensah"}},
			{accra, "/", []string{"ACC/001", "Kwame"}, []string{"NRB/001", "Wanjiru", "Otieno"}},
			{accra, "/admin/students/", []string{"ACC/001", "Mensah"}, []string{"NRB/00", "Kamau"}},
			{d.browser("school.localhost"), "/", nil, []string{"NRB/001", "ACC/001"}},
		}
		for _, c := range cases {
			code, page, _ := c.b.do(http.MethodGet, c.path, nil)
			if code != 200 {
				t.Fatalf("%s%s: %d", c.b.host, c.path, code)
			}
			for _, w := range c.want {
				if !strings.Contains(page, w) {
					t.Errorf("%s%s lacks %q", c.b.host, c.path, w)
				}
			}
			for _, w := range c.dontWant {
				if strings.Contains(page, w) {
					t.Errorf("%s%s shows another school's %q", c.b.host, c.path, w)
				}
			}
		}
	})

	t.Run("host name variants reach the same tenant, unknown hosts get 404", func(t *testing.T) {
		c := d.client()
		cases := []struct {
			host string
			code int
			want string
		}{
			{"school.localhost:" + d.proxyPort, 200, "Campus School"},
			{"NAIROBI.school.localhost.", 200, "NRB/001"},
			{"nairobi.school.localhost:" + d.proxyPort, 200, "NRB/001"},
			{"Accra.School.Localhost", 200, "ACC/001"},
			{"unknown.school.localhost", 404, ""},
			{"localhost", 404, ""},
		}
		for _, tc := range cases {
			code, body := d.get(c, tc.host, "/")
			if code != tc.code {
				t.Errorf("Host %q: status %d, want %d", tc.host, code, tc.code)
			}
			if tc.want != "" && !strings.Contains(body, tc.want) {
				t.Errorf("Host %q: page lacks %q", tc.host, tc.want)
			}
			if tc.code == 404 {
				for _, leak := range []string{"NRB/001", "ACC/001", "Nairobi", "Accra", "Campus School"} {
					if strings.Contains(body, leak) {
						t.Errorf("Host %q: 404 page leaks %q", tc.host, leak)
					}
				}
			}
		}
	})

	t.Run("a session cookie copied to another school is worthless", func(t *testing.T) {
		u, _ := url.Parse(d.url("nairobi.school.localhost", "/"))
		var session *http.Cookie
		for _, ck := range nairobi.c.Jar.Cookies(u) {
			if ck.Name == "campus_session" {
				session = ck
			}
		}
		if session == nil {
			t.Fatal("nairobi login set no campus_session cookie")
		}
		thief := d.browser("accra.school.localhost")
		au, _ := url.Parse(d.url("accra.school.localhost", "/"))
		thief.c.Jar.SetCookies(au, []*http.Cookie{{Name: "campus_session", Value: session.Value}})
		code, page, resp := thief.do(http.MethodGet, "/admin/students/", nil)
		if code == 200 || !strings.Contains(resp.Header.Get("Location"), "/admin/login/") {
			t.Fatalf("accra with nairobi's cookie: %d, Location %q, want a redirect to login", code, resp.Header.Get("Location"))
		}
		if strings.Contains(page, "ACC/001") {
			t.Fatal("accra admin data shown to nairobi's cookie")
		}
	})

	t.Run("logins: a client-sent X-Forwarded-For does not escape a lock-out; unlock lifts it", func(t *testing.T) {
		out, err := d.campus([]string{"CAMPUS_SUPERUSER_PASSWORD=" + password}, "",
			"manage", "accra", "createsuperuser", "--username", "guard", "--noinput")
		if err != nil {
			t.Fatalf("createsuperuser: %v\n%s", err, out)
		}
		// Every attempt claims another address; the app must count the
		// one the proxy saw.
		attacker := d.browser("accra.school.localhost")
		try := func(i int, pw string) (int, string) {
			attacker.header = http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i)}}
			code, page, _ := attacker.post("/admin/login/", "/admin/login/", url.Values{"username": {"guard"}, "password": {pw}})
			return code, page
		}
		for i := range 4 {
			if code, page := try(i, "wrong-password-1"); code != http.StatusOK || !strings.Contains(page, "Please enter a correct username and password.") {
				t.Fatalf("wrong password %d: %d %.300s", i, code, page)
			}
		}
		for i, pw := range []string{"wrong-password-1", password} { // the 5th failure locks
			if code, page := try(90+i, pw); code != http.StatusTooManyRequests || !strings.Contains(page, "This username is locked out") {
				t.Fatalf("attempt %d after 4 failures from spoofed addresses: %d %.300s, want the lock-out page", i+5, code, page)
			}
		}
		if out, err := d.campus(nil, "", "manage", "accra", "unlock", "guard"); err != nil || !strings.Contains(out, "Unlocked") {
			t.Fatalf("unlock: %v\n%s", err, out)
		}
		d.browser("accra.school.localhost").login("guard", password)
	})

	t.Run("killing one app: that school recovers, the others never notice", func(t *testing.T) {
		pid := appPID(t, d.Pid(), "nairobi")
		var failures atomic.Int64
		var requests atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, host := range []string{"accra.school.localhost", "school.localhost"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := d.client()
				for {
					select {
					case <-stop:
						return
					default:
					}
					requests.Add(1)
					if code, body := d.get(c, host, "/"); code != 200 {
						failures.Add(1)
						t.Errorf("%s during nairobi's crash: %d %.200s", host, code, body)
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill nairobi app %d: %v", pid, err)
		}
		start := time.Now()
		// Nairobi is served again within a few seconds (the proxy holds
		// requests while the supervisor restarts it).
		c := d.client()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := d.get(c, "nairobi.school.localhost", "/")
			if code == 200 && strings.Contains(body, "NRB/001") && appPIDOrZero(d.Pid(), "nairobi") != pid {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nairobi not served again within 15s of its app being killed: %d", code)
			}
			time.Sleep(50 * time.Millisecond)
		}
		recovered := time.Since(start)
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("nairobi served again %s after SIGKILL; other schools: %d requests, %d failures", recovered.Round(time.Millisecond), requests.Load(), failures.Load())
		if requests.Load() < 10 {
			t.Fatalf("only %d requests to the other schools; the check proves nothing", requests.Load())
		}
	})

	t.Run("tenants created and deleted while running", func(t *testing.T) {
		start := time.Now()
		out, err := d.campus(nil, "", "tenant", "create", "lagos", "--host", "lagos.school.localhost", "--display-name", "Lagos School")
		if err != nil {
			t.Fatalf("tenant create: %v\n%s", err, out)
		}
		took := d.waitFor("lagos.school.localhost", 200, 60*time.Second)
		// How fast is measured by `campus bench routing` (docs/BENCHMARKS.md),
		// not asserted here: this test must pass on a busy machine.
		t.Logf("lagos routable %s after `tenant create` returned (%s including the command)", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		out, err = d.campus(nil, "", "tenant", "create", "lagos2", "--host", "LAGOS.school.localhost")
		if err == nil || !strings.Contains(out, `"lagos"`) {
			t.Errorf("second claim of lagos's host: err %v, output %q; want a refusal naming the owner", err, out)
		}
		out, err = d.campus(nil, "", "tenant", "suspend", "lagos")
		if err != nil {
			t.Fatalf("tenant suspend: %v\n%s", err, out)
		}
		d.waitFor("lagos.school.localhost", 503, 60*time.Second)
		out, err = d.campus(nil, "", "tenant", "delete", "lagos")
		if err != nil {
			t.Fatalf("tenant delete: %v\n%s", err, out)
		}
		d.waitFor("lagos.school.localhost", 404, 60*time.Second)
	})

	t.Run("admin listener", func(t *testing.T) {
		resp, err := http.Get("http://" + d.adminAddr + "/routes")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var routes any
		if err := json.NewDecoder(resp.Body).Decode(&routes); err != nil {
			t.Fatalf("/routes is not JSON: %v", err)
		}
		b, _ := json.Marshal(routes)
		for _, h := range []string{"nairobi.school.localhost", "accra.school.localhost", "school.localhost"} {
			if !strings.Contains(string(b), h) {
				t.Errorf("/routes lacks %s", h)
			}
		}
		mresp, err := http.Get("http://" + d.adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer mresp.Body.Close()
		m, _ := io.ReadAll(mresp.Body)
		if !strings.Contains(string(m), `campus_proxy_requests_total{code="200",tenant="nairobi"}`) {
			t.Errorf("proxy metrics lack nairobi's requests")
		}
	})
}

// appPID finds the `campus app --tenant NAME` child of the dev process.
func appPID(t *testing.T, parent int, tenant string) int {
	t.Helper()
	pid := 0
	if systemtest.Eventually(60*time.Second, func() error {
		if pid = appPIDOrZero(parent, tenant); pid == 0 {
			return errors.New("none yet")
		}
		return nil
	}) != nil {
		t.Fatalf("no app process for %s under pid %d", tenant, parent)
	}
	return pid
}

func appPIDOrZero(parent int, tenant string) int {
	kids, _ := systemtest.Children(parent)
	for _, k := range kids {
		if len(k.Args) >= 4 && k.Args[1] == "app" && containsSeq(k.Args, "--tenant", tenant) {
			return k.Pid
		}
	}
	return 0
}

func containsSeq(args []string, a, b string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == a && args[i+1] == b {
			return true
		}
	}
	return false
}
