package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/tenancy"
)

func TestParsePublicURLAndTenantURL(t *testing.T) {
	tests := []struct {
		in, host, want string
		bad            bool
	}{
		{in: "http://localhost:8000", host: "nairobi.school.localhost", want: "http://nairobi.school.localhost:8000/admin/"},
		{in: "https://school.example", host: "nairobi.school.example", want: "https://nairobi.school.example/admin/"},
		{in: "https://x:443/", host: "a.example", want: "https://a.example/admin/"},
		{in: "http://x:80", host: "a.example", want: "http://a.example/admin/"},
		{in: "https://x:8443", host: "a.example", want: "https://a.example:8443/admin/"},
		{in: "ftp://x", bad: true},
		{in: "localhost:8000", bad: true},
		{in: "http://x/path", bad: true},
		{in: "http://user:pw@x", bad: true},
	}
	for _, tt := range tests {
		p, err := tenancy.ParsePublicURL(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("tenancy.ParsePublicURL(%q) err = %v, want bad %v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad {
			if got := p.TenantURL(tt.host, "/admin/"); got != tt.want {
				t.Errorf("%q: tenantURL = %q, want %q", tt.in, got, tt.want)
			}
		}
	}
	if got := tenancy.PublicURLFromListen("127.0.0.1:8000").TenantURL("a.localhost", "/"); got != "http://a.localhost:8000/" {
		t.Errorf("from listen 127.0.0.1:8000: %q", got)
	}
	if got := tenancy.PublicURLFromListen("0.0.0.0:80").TenantURL("a.localhost", "/"); got != "http://a.localhost/" {
		t.Errorf("from listen :80: %q", got)
	}
}

// The links tenant create and createsuperuser print carry the scheme and
// port from --public-url, $CAMPUS_PUBLIC_URL, or what `campus dev`
// recorded in the data folder.
func TestPrintedURLs(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "urls")
	t.Cleanup(func() { c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes") })
	// What `campus dev --listen 127.0.0.1:8123` records.
	if err := tenancy.WriteDevState(c.env["CAMPUS_DATA"], tenancy.DevState{PublicURL: tenancy.PublicURLFromListen("127.0.0.1:8123").String()}); err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{"CAMPUS_SUPERUSER_PASSWORD": "long-enough-pw"}
	r := c.run("", pw, "tenant", "create", name, "--host", name+".school.localhost", "--superuser", "head")
	if r.code != 0 || !strings.Contains(r.stdout, "log in at http://"+name+".school.localhost:8123/admin/\n") {
		t.Fatalf("tenant create: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	env := map[string]string{"CAMPUS_SUPERUSER_PASSWORD": "long-enough-pw", "CAMPUS_PUBLIC_URL": "https://schools.example"}
	r = c.run("", env, "manage", name, "createsuperuser", "--username", "clerk", "--noinput")
	if r.code != 0 || !strings.Contains(r.stdout, "Log in at https://"+name+".school.localhost/admin/\n") {
		t.Fatalf("createsuperuser with CAMPUS_PUBLIC_URL: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	r = c.run("", pw, "manage", name, "createsuperuser", "--username", "third", "--noinput", "--public-url", "http://x:9000")
	if r.code != 0 || !strings.Contains(r.stdout, "Log in at http://"+name+".school.localhost:9000/admin/\n") {
		t.Fatalf("createsuperuser --public-url: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if r := c.run("", pw, "manage", name, "createsuperuser", "--username", "fourth", "--noinput", "--public-url", "nonsense"); r.code != 2 {
		t.Fatalf("a bad --public-url: exit %d, %s", r.code, r.stderr)
	}
}

// From a second terminal in the wrong folder, or with `campus dev` not
// running: a short message naming the data folder and the database
// address tried, quickly, and no folder created.
func TestSecondTerminalErrors(t *testing.T) {
	c := newCLI(t)
	missing := filepath.Join(t.TempDir(), "elsewhere", ".campus")
	for _, args := range [][]string{
		{"manage", "default", "createsuperuser"},
		{"manage", "default", "students", "export"},
		{"tenant", "list"},
		{"tenant", "show", "default"},
	} {
		start := time.Now()
		r := c.run("", map[string]string{"CAMPUS_DATA": missing}, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no Campus data folder at "+missing) || !strings.Contains(r.stderr, "--data") {
			t.Errorf("%v in the wrong folder: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
			t.Fatalf("%v created %s (stat: %v)", args, filepath.Dir(missing), err)
		}
		t.Logf("%v: %v", args, time.Since(start))
	}

	// The data folder is there, the database is not running: a closed
	// port on loopback.
	name := uniqueTenant(t, "nodb")
	t.Cleanup(func() { c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes") })
	c.ok("tenant", "create", name, "--host", name+".school.localhost")
	dead := "mongodb://" + systemtest.FreeAddr(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		from string
	}{
		{"MONGODB_URI", map[string]string{"MONGODB_URI": dead}, "MONGODB_URI"},
		{"recorded by campus dev", map[string]string{"MONGODB_URI": ""}, "dev.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.from == "dev.json" {
				if err := tenancy.WriteDevState(c.env["CAMPUS_DATA"], tenancy.DevState{PublicURL: "http://HOST:8000", MongoURI: dead}); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(filepath.Join(c.env["CAMPUS_DATA"], tenancy.DevStateFile))
			}
			start := time.Now()
			r := c.run("", tc.env, "manage", name, "migrate")
			took := time.Since(start)
			if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the database at "+dead) ||
				!strings.Contains(r.stderr, c.env["CAMPUS_DATA"]) || !strings.Contains(r.stderr, tc.from) || !strings.Contains(r.stderr, "campus dev") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines > 2 {
				t.Errorf("a %d-line message: %q", lines+1, r.stderr)
			}
			// Not a speed target: the point is that the driver's 15 s
			// server-selection wait is not reached.
			if took >= 10*time.Second {
				t.Errorf("took %v: waited for the driver's timeout", took)
			}
			t.Logf("failed after %v", took)
		})
	}
}

// --help prints on standard output and exits 0, for every command.
func TestHelpOnStdout(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"help", "manage"},
		{"dev", "--help"}, {"proxy", "--help"}, {"app", "-h"}, {"version", "--help"}, {"migrate", "--help"},
		{"healthcheck", "--help"}, {"token", "--help"},
		{"tenant", "--help"}, {"tenant", "create", "--help"}, {"tenant", "list", "-h"},
		{"manage", "--help"}, {"manage", "default", "--help"}, {"manage", "default", "createsuperuser", "--help"},
		{"manage", "default", "students", "--help"}, {"manage", "default", "students", "import", "--help"},
	} {
		r := c.run("", nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage") || r.stderr != "" {
			t.Errorf("campus %s: exit %d, stdout %d bytes, stderr %q", strings.Join(args, " "), r.code, len(r.stdout), r.stderr)
		}
	}
	// A bad flag is an error on standard error that points to --help.
	r := c.run("", nil, "tenant", "list", "--no-such-flag")
	if r.code != 2 || !strings.Contains(r.stderr, "campus tenant list --help") || r.stdout != "" {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestDidYouMean(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tenat", "list"}, `did you mean "tenant"?`},
		{[]string{"mange"}, `did you mean "manage"?`},
		{[]string{"versoin"}, `did you mean "version"?`},
		{[]string{"tenant", "lst"}, `did you mean "list"?`},
		{[]string{"manage", "default", "migrat"}, `did you mean "migrate"?`},
		{[]string{"manage", "default", "createsuperusr"}, `did you mean "createsuperuser"?`},
		{[]string{"token", "proxi"}, `did you mean "proxy"?`},
	} {
		r := c.run("", nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("campus %s: exit %d, stderr %q; want %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
	if s := didYouMean("zzzzzz", []string{"dev", "proxy"}); s != "" {
		t.Errorf("a far name got a suggestion: %q", s)
	}
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-01T17:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine("dev", bi, "/usr/local/bin/campus"), "campus dev (commit 0123456789ab, 2026-12-01T17:00:00Z, modified) go1.26.8"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	bi.Main.Version = "v1.2.3"
	if got := versionLine("dev", bi, "/usr/local/bin/campus"); !strings.HasPrefix(got, "campus v1.2.3 (commit 0123456789ab") {
		t.Errorf("module version: %q", got)
	}
	if got := versionLine("v9", bi, "/usr/local/bin/campus"); !strings.HasPrefix(got, "campus v9 ") {
		t.Errorf("-ldflags version: %q", got)
	}
	if got := versionLine("dev", &debug.BuildInfo{GoVersion: "go1.26.8"}, "/usr/local/bin/campus"); !strings.Contains(got, "commit not recorded: built outside a git checkout or with -buildvcs=false") {
		t.Errorf("no VCS stamp: %q", got)
	}
	for _, exe := range []string{"/tmp/go-build123/b001/exe/campus", "/home/ops/gocache/07/07fd3a9c0e1b2d4f-d/campus"} {
		if got := versionLine("dev", &debug.BuildInfo{GoVersion: "go1.26.8"}, exe); !strings.Contains(got, "built by `go run`") {
			t.Errorf("go run from %s: %q", exe, got)
		}
	}
	var out bytes.Buffer
	if code := run(t.Context(), &env{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}, []string{"version"}); code != 0 ||
		!strings.HasPrefix(out.String(), "campus ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("campus version: %d %q", code, out.String())
	}
}

// createsuperuser checks the username before anything else and asks again
// on a taken or bad username, a mismatch or a weak password.
func TestCreateSuperuserAsksAgain(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "prompt")
	t.Cleanup(func() { c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes") })
	c.ok("tenant", "create", name, "--host", name+".school.localhost")
	pw := map[string]string{"CAMPUS_SUPERUSER_PASSWORD": "long-enough-pw"}
	if r := c.run("", pw, "manage", name, "createsuperuser", "--username", "head", "--noinput"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	answers := "HEAD\nbad name!\nclerk\nclerk@example.com\npassword1\npassword2\n12345678\n12345678\ngood-password\ngood-password\n"
	r := c.run(answers, nil, "manage", name, "createsuperuser")
	if r.code != 0 || !strings.Contains(r.stdout, `Superuser "clerk" created`) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"that username is taken", "username must be", "did not match", "numeric"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "Username: "); n != 3 {
		t.Errorf("asked for the username %d times, want 3", n)
	}
	// A taken --username is refused before any password is asked for.
	r = c.run("x\nx\n", nil, "manage", name, "createsuperuser", "--username", "Clerk")
	if r.code != 1 || !strings.Contains(r.stderr, "taken") || strings.Contains(r.stderr, "Password") {
		t.Errorf("taken --username: exit %d, stderr %q", r.code, r.stderr)
	}
	// Three bad answers: give up, nothing saved.
	r = c.run("a b\nc d\ne f\n", nil, "manage", name, "createsuperuser")
	if r.code != 1 || !strings.Contains(r.stderr, "not saved") {
		t.Errorf("three bad usernames: exit %d, stderr %q", r.code, r.stderr)
	}
}

// students import --update and --dry-run; export with a BOM by default.
func TestCLIImportUpdate(t *testing.T) {
	c := newCLI(t)
	name, other := uniqueTenant(t, "upd"), uniqueTenant(t, "updother")
	t.Cleanup(func() {
		c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes")
		c.run("", nil, "tenant", "delete", other, "--purge-data", "--yes")
	})
	c.ok("tenant", "create", name, "--host", name+".school.localhost")
	c.ok("tenant", "create", other, "--host", other+".school.localhost")
	dir := t.TempDir()
	first := filepath.Join(dir, "first.csv")
	os.WriteFile(first, []byte("Reg No;First Name;Surname\nU/1;Wanjiru;Kamau\nU/2;Otieno;Odhiambo\n"), 0o600)
	c.ok("manage", name, "students", "import", first)
	second := filepath.Join(dir, "second.csv")
	os.WriteFile(second, []byte("registration_no,first_name,second_name\nU/1,Wanjiru,Changed\nU/2,Otieno,Odhiambo\nU/3,New,Pupil\n"), 0o600)
	if r := c.run("", nil, "manage", name, "students", "import", second); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("add mode with existing students: exit %d, %q", r.code, r.stderr)
	}
	if out := c.ok("manage", name, "students", "import", second, "--update", "--dry-run").stdout; !strings.Contains(out, "1 new, 1 changed, 1 unchanged; nothing was written") {
		t.Fatalf("dry run: %q", out)
	}
	if out := c.ok("manage", name, "students", "import", second, "--update").stdout; !strings.Contains(out, "1 new, 1 updated, 1 unchanged") {
		t.Fatalf("update: %q", out)
	}
	out := c.ok("manage", name, "students", "export").stdout
	if want := "\uFEFF" + exportCSV("U/1,Wanjiru,Changed", "U/2,Otieno,Odhiambo", "U/3,New,Pupil"); out != want {
		t.Fatalf("export = %q, want %q", out, want)
	}
	if out := c.ok("manage", name, "students", "export", "--search", "pupil", "--no-bom").stdout; out != exportCSV("U/3,New,Pupil") {
		t.Fatalf("export --search: %q", out)
	}
	if out := c.ok("manage", other, "students", "export").stdout; strings.Contains(out, "U/") {
		t.Fatalf("the other tenant's export holds these students: %q", out)
	}
}

func TestProbeMongo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dead := systemtest.FreeAddr(t)
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"mongodb://" + ln.Addr().String(), true},
		{"mongodb://user:secret@" + ln.Addr().String() + "/db?authSource=admin", true},
		{"mongodb://" + dead + "," + ln.Addr().String(), true}, // one member answers
		{fmt.Sprintf("mongodb://[::1]:%d", port), false},       // listening on IPv4 only
		{"mongodb://" + dead, false},
		{"mongodb://user:secret@" + dead, false},
		{"mongodb+srv://cluster.example", true}, // left to the driver
		{"mongodb://%2Ftmp%2Fmongo.sock", true}, // a Unix socket: left to the driver
	} {
		err := tenancy.Probe(t.Context(), tc.uri, "test", t.TempDir())
		if (err == nil) != tc.ok {
			t.Errorf("probeMongo(%s) = %v, want ok %v", tc.uri, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
