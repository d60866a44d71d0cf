package deploytest

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	secretsScript = "deploy/compose/secrets.sh"
	initScript    = "deploy/compose/campus-init.sh"
	mongoUsersJS  = "deploy/compose/mongo-users.js"
)

var hexPassword = regexp.MustCompile(`^[0-9a-f]{64}$`)

func runSecrets(t *testing.T, dir string, env map[string]string) result {
	t.Helper()
	r := runCommand(t, []string{"sh", repoPath(secretsScript), dir}, env, 30*time.Second)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", secretsScript, r.code, r.stdout, r.stderr)
	}
	return r
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestSecretsScript runs secrets.sh: it must write exactly the secrets
// docker-compose.yml names, private to the operator, with one database user
// per tenant confined to that tenant's database, and never overwrite one.
func TestSecretsScript(t *testing.T) {
	p := loadCompose(t)
	dir := filepath.Join(t.TempDir(), "secrets")
	runSecrets(t, dir, nil)

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("secrets directory mode %v, want 0700", st.Mode().Perm())
	}
	files := readDir(t, dir)
	if got, want := sortedKeys(files), sortedKeys(p.Secrets); !slices.Equal(got, want) {
		t.Fatalf("secrets.sh wrote %v; docker-compose.yml uses %v", got, want)
	}
	for name := range files {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Compose bind-mounts secret files with their host mode; the
		// containers' non-root users must read them. The directory keeps
		// other host users out.
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 in a 0700 directory", name, st.Mode().Perm())
		}
	}
	passwords := map[string]string{}
	for _, name := range []string{"mongo_root_password", "grafana_admin_password"} {
		if !hexPassword.MatchString(files[name]) {
			t.Errorf("%s is not 256 random bits in hex", name)
		}
		passwords[files[name]] = name
	}
	tenants := readTenants(t)
	for _, name := range append([]string{"admin"}, tenantNames(tenants)...) {
		secret := "mongodb_uri_" + name
		u, err := url.Parse(files[secret])
		if err != nil {
			t.Errorf("%s: %v", secret, err)
			continue
		}
		pw, _ := u.User.Password()
		wantUser, wantDB := "campus-"+name, name
		if u.Scheme != "mongodb" || u.Host != "mongo:27017" || u.User.Username() != wantUser ||
			u.Path != "/"+wantDB || u.Query().Get("authSource") != wantDB {
			t.Errorf("%s = %s, want mongodb://%s:…@mongo:27017/%s?authSource=%s", secret, redact(u), wantUser, wantDB, wantDB)
		}
		if !hexPassword.MatchString(pw) {
			t.Errorf("%s: the password is not 256 random bits in hex", secret)
		}
		if other, dup := passwords[pw]; dup {
			t.Errorf("%s shares its password with %s", secret, other)
		}
		passwords[pw] = secret
	}

	t.Run("idempotent", func(t *testing.T) {
		r := runSecrets(t, dir, nil)
		if strings.TrimSpace(r.stdout) != "" {
			t.Errorf("second run changed something:\n%s", r.stdout)
		}
		if again := readDir(t, dir); !mapsEqual(again, files) {
			t.Errorf("second run rewrote secrets")
		}
	})

	t.Run("new tenant", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "tenants.conf")
		raw, err := os.ReadFile(repoPath(tenantsFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, append(raw, []byte("lagos lagos.school.localhost Lagos School\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSecrets(t, dir, map[string]string{"TENANTS_FILE": conf})
		if want := "created " + filepath.Join(dir, "mongodb_uri_lagos") + "\ncreated " + filepath.Join(dir, "consul_token_lagos"); strings.TrimSpace(r.stdout) != want {
			t.Errorf("adding a tenant printed %q, want only its new credential and token", r.stdout)
		}
		after := readDir(t, dir)
		if !uuidRE.MatchString(after["consul_token_lagos"]) {
			t.Errorf("consul_token_lagos = %q, want a UUID (Consul takes no other secret)", after["consul_token_lagos"])
		}
		delete(after, "mongodb_uri_lagos")
		delete(after, "consul_token_lagos")
		if !mapsEqual(after, files) {
			t.Errorf("adding a tenant changed other secrets")
		}
	})

	t.Run("reserved name", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "tenants.conf")
		if err := os.WriteFile(conf, []byte("admin admin.school.localhost\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCommand(t, []string{"sh", repoPath(secretsScript), t.TempDir()}, map[string]string{"TENANTS_FILE": conf}, 30*time.Second)
		if r.code == 0 {
			t.Errorf("secrets.sh accepted a tenant named admin")
		}
	})
}

func tenantNames(ts []tenantLine) []string {
	var out []string
	for _, tl := range ts {
		out = append(out, tl.name)
	}
	return out
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.UserPassword(c.User.Username(), "xxxxx")
	}
	return c.String()
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// mongoshHarness runs mongo-users.js under Node.js with mongosh's globals
// faked: every Mongo connection and user command is recorded to $CALLS_OUT.
const mongoshHarness = `
const fs = require('fs');
const calls = [];
const existing = new Set(JSON.parse(process.env.EXISTING || '[]'));
class FakeDB {
  constructor(name) { this.name = name; }
  getUser(u) { return existing.has(this.name + '/' + u) ? { user: u } : null; }
  createUser(spec) { calls.push({ op: 'create', db: this.name, user: spec.user, pwd: spec.pwd, roles: spec.roles }); }
  updateUser(u, spec) { calls.push({ op: 'update', db: this.name, user: u, pwd: spec.pwd, roles: spec.roles }); }
  runCommand(c) { calls.push({ op: 'command', db: this.name, cmd: Object.keys(c)[0] }); return { ok: 1 }; }
}
globalThis.Mongo = class { constructor(uri) { calls.push({ op: 'connect', uri }); } getDB(n) { return new FakeDB(n); } };
globalThis.print = (...a) => process.stdout.write(a.join(' ') + '\n');
globalThis.sleep = () => {};
process.on('exit', () => fs.writeFileSync(process.env.CALLS_OUT, JSON.stringify(calls)));
require(process.env.SCRIPT);
`

type mongoCall struct {
	Op    string `json:"op"`
	URI   string `json:"uri"`
	DB    string `json:"db"`
	User  string `json:"user"`
	Pwd   string `json:"pwd"`
	Roles []struct {
		Role string `json:"role"`
		DB   string `json:"db"`
	} `json:"roles"`
}

func runMongoUsers(t *testing.T, secrets string, existing []string) ([]mongoCall, result) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot run mongo-users.js outside mongosh")
	}
	dir := t.TempDir()
	harness := filepath.Join(dir, "harness.js")
	if err := os.WriteFile(harness, []byte(mongoshHarness), 0o644); err != nil {
		t.Fatal(err)
	}
	ex, _ := json.Marshal(existing)
	out := filepath.Join(dir, "calls.json")
	r := runCommand(t, []string{node, harness}, map[string]string{
		"SCRIPT":                   repoPath(mongoUsersJS),
		"CALLS_OUT":                out,
		"EXISTING":                 string(ex),
		"SECRETS_DIR":              secrets,
		"MONGO_ROOT_PASSWORD_FILE": filepath.Join(secrets, "mongo_root_password"),
		"MONGO_HOST":               "mongo:27017",
	}, 30*time.Second)
	var calls []mongoCall
	if b, err := os.ReadFile(out); err == nil {
		if err := json.Unmarshal(b, &calls); err != nil {
			t.Fatal(err)
		}
	}
	return calls, r
}

// TestMongoUsersScript: with the secrets of secrets.sh, mongo-users.js
// gives each tenant a user in its own database with readWrite on that
// database only, and the admin user its two admin roles; it updates users
// that exist, never prints a password, and changes nothing when a
// credential is malformed.
func TestMongoUsersScript(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	runSecrets(t, dir, nil)
	files := readDir(t, dir)
	tenants := tenantNames(readTenants(t))

	calls, r := runMongoUsers(t, dir, nil)
	if r.code != 0 {
		t.Fatalf("mongo-users.js: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, pw := range files {
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Fatalf("mongo-users.js printed a secret:\n%s%s", r.stdout, r.stderr)
		}
	}
	if len(calls) == 0 || calls[0].Op != "connect" {
		t.Fatalf("calls %+v: want a connection first", calls)
	}
	root, err := url.Parse(calls[0].URI)
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := root.User.Password(); root.User.Username() != "root" || pw != files["mongo_root_password"] || root.Host != "mongo:27017" {
		t.Errorf("connected as %s, want root with the mongo_root_password secret at mongo:27017", redact(root))
	}
	created := map[string]mongoCall{}
	for _, c := range calls {
		switch c.Op {
		case "create":
			created[c.DB] = c
		case "update":
			t.Errorf("updated %s/%s on a fresh server", c.DB, c.User)
		}
	}
	if got, want := sortedKeys(created), append([]string{"admin"}, tenants...); !sameSet(got, want) {
		t.Fatalf("created users in databases %v, want %v", got, want)
	}
	for db, c := range created {
		u, _ := url.Parse(files["mongodb_uri_"+db])
		pw, _ := u.User.Password()
		if c.User != u.User.Username() || c.Pwd != pw {
			t.Errorf("database %s: user %s does not match the credential of mongodb_uri_%s", db, c.User, db)
		}
		var roles []string
		for _, r := range c.Roles {
			roles = append(roles, r.Role+"@"+r.DB)
		}
		want := []string{"readWrite@" + db}
		if db == "admin" {
			want = []string{"readWriteAnyDatabase@admin", "dbAdminAnyDatabase@admin"}
		}
		if !slices.Equal(roles, want) {
			t.Errorf("database %s: user %s has roles %v, want %v", db, c.User, roles, want)
		}
	}

	t.Run("existing users are updated", func(t *testing.T) {
		var existing []string
		for db, c := range created {
			existing = append(existing, db+"/"+c.User)
		}
		calls, r := runMongoUsers(t, dir, existing)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		n := 0
		for _, c := range calls {
			if c.Op == "create" {
				t.Errorf("created %s/%s again", c.DB, c.User)
			}
			if c.Op == "update" {
				n++
			}
		}
		if n != len(created) {
			t.Errorf("updated %d users, want %d", n, len(created))
		}
	})

	t.Run("a credential for another database changes nothing", func(t *testing.T) {
		bad := t.TempDir()
		for name, v := range files {
			if name == "mongodb_uri_nairobi" {
				v = strings.Replace(v, "/nairobi?authSource=nairobi", "/accra?authSource=accra", 1)
			}
			if err := os.WriteFile(filepath.Join(bad, name), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		calls, r := runMongoUsers(t, bad, nil)
		if r.code == 0 {
			t.Fatalf("accepted mongodb_uri_nairobi naming database accra")
		}
		if len(calls) != 0 {
			t.Errorf("touched MongoDB before validating every credential: %+v", calls)
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// shim is a stand-in campus for the init script: it records its arguments
// and answers `tenant show` with $SHIM_SHOW_EXIT.
const shim = `#!/bin/sh
{ for a in "$@"; do printf '%s\037' "$a"; done; printf '\n'; } >>"$SHIM_LOG"
if [ "$1" = tenant ] && [ "$2" = show ]; then exit "${SHIM_SHOW_EXIT:-1}"; fi
exit 0
`

// TestInitScript runs campus-init.sh with a recording campus: new tenants
// are created with their hosts and display names, existing ones migrated,
// and every campus command it runs is accepted by the real campus with the
// campus-init service's environment.
func TestInitScript(t *testing.T) {
	p := loadCompose(t)
	svc := p.Services["campus-init"]
	if want := []string{"/busybox/sh", "/etc/campus/campus-init.sh"}; !slices.Equal([]string(svc.Entrypoint), want) {
		t.Fatalf("campus-init entrypoint %q, want %q", svc.Entrypoint, want)
	}
	env := serviceEnv(svc, containerRewrites)
	if env["TENANTS_FILE"] != "/etc/campus/tenants.conf" {
		t.Fatalf("campus-init TENANTS_FILE=%q", env["TENANTS_FILE"])
	}
	mounted := map[string]string{}
	for _, c := range svc.Configs {
		mounted[c.Target] = p.Configs[c.Source].File
	}
	if mounted["/etc/campus/tenants.conf"] != repoPath(tenantsFile) || mounted["/etc/campus/campus-init.sh"] != repoPath(initScript) {
		t.Fatalf("campus-init mounts %v", mounted)
	}
	tenants := readTenants(t)

	for _, tc := range []struct {
		name     string
		showExit string
		want     func(tl tenantLine) [][]string
	}{
		{"new tenants", "1", func(tl tenantLine) [][]string {
			create := []string{"tenant", "create", tl.name}
			for _, h := range tl.hosts {
				create = append(create, "--host", h)
			}
			if tl.display != "" {
				create = append(create, "--display-name", tl.display)
			}
			return [][]string{{"tenant", "show", tl.name}, create, tokenArgs(tl.name)}
		}},
		{"existing tenants", "0", func(tl tenantLine) [][]string {
			return [][]string{{"tenant", "show", tl.name}, {"manage", tl.name, "migrate"}, tokenArgs(tl.name)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			if err := os.WriteFile(filepath.Join(bin, "campus"), []byte(shim), 0o755); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(t.TempDir(), "log")
			senv := map[string]string{}
			for k, v := range env {
				senv[k] = v
			}
			senv["TENANTS_FILE"] = repoPath(tenantsFile)
			senv["SHIM_LOG"] = log
			senv["SHIM_SHOW_EXIT"] = tc.showExit
			senv["PATH"] = bin + ":/usr/bin:/bin"
			r := runCommand(t, []string{"sh", repoPath(initScript)}, senv, 30*time.Second)
			if r.code != 0 {
				t.Fatalf("campus-init.sh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
				got = append(got, strings.Split(strings.TrimSuffix(line, "\037"), "\037"))
			}
			var want [][]string
			for _, tl := range tenants {
				want = append(want, tc.want(tl)...)
			}
			// Then the proxies' and Prometheus's tokens.
			want = append(want,
				[]string{"token", "proxy", "--secret-file", "/run/secrets/consul_token_proxy"},
				[]string{"token", "reader", "--secret-file", "/run/secrets/consul_token_prometheus"})
			if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
				t.Fatalf("campus-init.sh ran\n  %q\nwant\n  %q", got, want)
			}
			for _, args := range got {
				checkAccepted(t, "campus-init", args, env)
			}
		})
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// tokenArgs is how campus-init binds a tenant's Consul token from its
// compose secret.
func tokenArgs(tenant string) []string {
	return []string{"token", "tenant", tenant, "--secret-file", "/run/secrets/consul_token_" + tenant}
}
