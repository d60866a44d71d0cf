package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// cli runs campus commands in-process against one embedded registry and
// the test database server.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: map[string]string{
		"CAMPUS_DATA":       t.TempDir(),
		"MONGODB_URI":       mongotest.URI(t),
		"CAMPUS_LOG_LEVEL":  "warn",
		"CAMPUS_LOG_FORMAT": "text",
	}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(stdin string, extraEnv map[string]string, args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string {
			if v, ok := extraEnv[k]; ok {
				return v
			}
			return c.env[k]
		},
	}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != 0 {
		c.t.Fatalf("campus %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// uniqueTenant returns a tenant name no other test (or test binary on a
// shared MongoDB) uses, since the name is also the database name.
func uniqueTenant(t *testing.T, base string) string {
	return base + "-" + strings.TrimPrefix(mongotest.NewName(t), "t_")[:8]
}

func TestFlagsFromEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"default", nil, nil, "127.0.0.1:8080", false},
		{"environment", nil, map[string]string{"CAMPUS_LISTEN": "127.0.0.1:9"}, "127.0.0.1:9", false},
		{"flag wins over environment", []string{"--listen", "127.0.0.1:7"}, map[string]string{"CAMPUS_LISTEN": "127.0.0.1:9"}, "127.0.0.1:7", false},
		{"bad environment value", nil, map[string]string{"CAMPUS_MIGRATE": "maybe"}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlags("app", "", "")
			listen := fs.String("listen", "127.0.0.1:8080", "")
			fs.Bool("migrate", false, "")
			e := &env{stderr: &bytes.Buffer{}, getenv: func(k string) string { return tc.env[k] }}
			err := parseFlags(fs, tc.args, e)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && *listen != tc.want {
				t.Fatalf("listen = %q, want %q", *listen, tc.want)
			}
		})
	}
	for flag, want := range map[string]string{"data": "CAMPUS_DATA", "admin-listen": "CAMPUS_ADMIN_LISTEN", "mongodb-uri": "MONGODB_URI", "mongodb-uri-file": "MONGODB_URI_FILE"} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"nonsense"},
		{"app"}, // --tenant is required
		{"tenant", "create", "x"},
		{"tenant", "create", "Bad_Name", "--host", "a.localhost"},
		{"manage", "default"},
		{"app", "--no-such-flag"},
	} {
		r := c.run("", nil, args...)
		if r.code == 0 {
			t.Errorf("campus %s succeeded; want a usage error", strings.Join(args, " "))
		}
		if r.stderr == "" {
			t.Errorf("campus %s: no message on stderr", strings.Join(args, " "))
		}
	}
}

func TestTenantAndManageCommands(t *testing.T) {
	c := newCLI(t)
	nairobi, accra := uniqueTenant(t, "nairobi"), uniqueTenant(t, "accra")
	t.Cleanup(func() {
		c.run("", nil, "tenant", "delete", nairobi, "--purge-data", "--yes")
		c.run("", nil, "tenant", "delete", accra, "--purge-data", "--yes")
	})
	c.ok("tenant", "create", nairobi, "--host", nairobi+".school.localhost", "--display-name", "Nairobi School")
	c.ok("tenant", "create", accra, "--host", accra+".school.localhost")

	t.Run("a host belongs to one tenant", func(t *testing.T) {
		r := c.run("", nil, "tenant", "create", uniqueTenant(t, "thief"), "--host", strings.ToUpper(nairobi)+".school.localhost.")
		if r.code == 0 || !strings.Contains(r.stderr, `"`+nairobi+`"`) {
			t.Fatalf("exit %d, stderr %q; want a refusal naming %s", r.code, r.stderr, nairobi)
		}
	})

	t.Run("list and show", func(t *testing.T) {
		var tenants []registry.Tenant
		if err := json.Unmarshal([]byte(c.ok("tenant", "list", "--json").stdout), &tenants); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, tn := range tenants {
			names[tn.Name] = true
		}
		if !names[nairobi] || !names[accra] {
			t.Fatalf("tenant list --json: %v", names)
		}
		if out := c.ok("tenant", "show", nairobi).stdout; !strings.Contains(out, "Nairobi School") {
			t.Fatalf("tenant show: %s", out)
		}
	})

	t.Run("migrate is idempotent", func(t *testing.T) {
		out := c.ok("manage", nairobi, "migrate").stdout
		if !strings.Contains(out, "already at schema version") {
			t.Fatalf("second migrate (tenant create migrated first): %q", out)
		}
	})

	t.Run("the app refuses a database newer than it knows", func(t *testing.T) {
		meta := mongotest.Client(t).Database(nairobi).Collection("meta")
		ctx := context.Background()
		if _, err := meta.UpdateOne(ctx, bson.M{"_id": "schema"}, bson.M{"$set": bson.M{"version": store.SchemaVersion + 1}}); err != nil {
			t.Fatal(err)
		}
		defer meta.UpdateOne(ctx, bson.M{"_id": "schema"}, bson.M{"$set": bson.M{"version": store.SchemaVersion}})
		r := c.run("", nil, "app", "--tenant", nairobi, "--listen", "127.0.0.1:0")
		if r.code != 1 || !strings.Contains(r.stderr, "newer") {
			t.Fatalf("exit %d, stderr %q; want a refusal saying the schema is newer", r.code, r.stderr)
		}
	})

	t.Run("unknown tenant", func(t *testing.T) {
		r := c.run("", nil, "manage", "ghost", "migrate")
		if r.code != 1 || !strings.Contains(r.stderr, `unknown tenant "ghost"`) {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("createsuperuser", func(t *testing.T) {
		r := c.run("", nil, "manage", nairobi, "createsuperuser", "--username", "head", "--noinput")
		if r.code != 2 || !strings.Contains(r.stderr, "CAMPUS_SUPERUSER_PASSWORD") {
			t.Fatalf("--noinput without a password: exit %d, %q", r.code, r.stderr)
		}
		// The browser's rules (issue 27): a common password is refused,
		// with every problem at once.
		r = c.run("", map[string]string{"CAMPUS_SUPERUSER_PASSWORD": "1234"}, "manage", nairobi, "createsuperuser", "--username", "head", "--noinput")
		if r.code == 0 || !strings.Contains(r.stderr, "This password is too short.") || !strings.Contains(r.stderr, "This password is too common.") ||
			!strings.Contains(r.stderr, "This password is entirely numeric.") {
			t.Fatalf("a short, common, numeric password: exit %d, %q", r.code, r.stderr)
		}
		r = c.run("", map[string]string{"CAMPUS_SUPERUSER_PASSWORD": "long-enough-pw"}, "manage", nairobi, "createsuperuser", "--username", "head", "--noinput")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		// Interactive, answers from standard input.
		r = c.run("clerk\nclerk@example.com\nanother-password\nanother-password\n", nil, "manage", nairobi, "createsuperuser")
		if r.code != 0 || !strings.Contains(r.stdout, `"clerk"`) {
			t.Fatalf("interactive: exit %d, %s %s", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "another-password") {
			t.Fatal("the password was echoed")
		}
		r = c.run("x\n\nshort\nshort\n", nil, "manage", nairobi, "createsuperuser")
		if r.code == 0 || !strings.Contains(r.stderr, "password") {
			t.Fatalf("a short password: exit %d, %q", r.code, r.stderr)
		}
		r = c.run("pw-one-long\npw-two-long\n", nil, "manage", nairobi, "changepassword", "head")
		if r.code == 0 || !strings.Contains(r.stderr, "did not match") {
			t.Fatalf("mismatched passwords: exit %d, %q", r.code, r.stderr)
		}
		c.run("new-password-1\nnew-password-1\n", nil, "manage", nairobi, "changepassword", "head")
	})

	t.Run("unlock", func(t *testing.T) {
		ctx := context.Background()
		st := store.New(mongotest.Client(t).Database(nairobi), store.Options{}) // the defaults, as the CLI's
		for range 5 {
			_, _ = st.Authenticate(ctx, "head", "wrong-password-1", "203.0.113.9")
		}
		var le *store.LockedError
		if _, err := st.Authenticate(ctx, "head", "new-password-1", "203.0.113.9"); !errors.As(err, &le) {
			t.Fatalf("head not locked out: %v", err)
		}
		tests := []struct {
			name   string
			args   []string
			code   int
			output string
		}{
			{"unknown user", []string{"ghost"}, 1, "tenant " + nairobi + ` has no user "ghost"`},
			{"no username", nil, 2, "exactly one USERNAME"},
			{"two usernames", []string{"head", "clerk"}, 2, "exactly one USERNAME"},
			{"locked user", []string{"HEAD"}, 0, `Unlocked "HEAD" at tenant ` + nairobi + ":\n  from 203.0.113.9: 5 failed logins forgotten; lifted: head's lock-out from that address (until "},
			{"again", []string{"head"}, 0, `Unlocked "head" at tenant ` + nairobi + ": nothing to lift"},
		}
		for _, tt := range tests {
			r := c.run("", nil, append([]string{"manage", nairobi, "unlock"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.output) {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.name, r.code, r.stdout, r.stderr, tt.code, tt.output)
			}
		}
		if _, err := st.Authenticate(ctx, "head", "new-password-1", "203.0.113.9"); err != nil {
			t.Fatalf("right password after unlock: %v", err)
		}
		if r := c.ok("manage", nairobi, "unlock", "--help"); !strings.Contains(r.stdout+r.stderr, "all addresses") {
			t.Errorf("unlock --help: %q %q", r.stdout, r.stderr)
		}
	})

	t.Run("CSV import with a bad row imports nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bad.csv")
		os.WriteFile(path, []byte("registration_no,first_name,second_name\nN/1,Wanjiru,Kamau\nN 2!,Otieno,\nN/3,Akinyi,Achieng\n"), 0o600)
		r := c.run("", nil, "manage", nairobi, "students", "import", path)
		if r.code != 1 || !strings.Contains(r.stderr, "line 3") || strings.Contains(r.stderr, "line 2") {
			t.Fatalf("exit %d, stderr %q; want line 3 reported", r.code, r.stderr)
		}
		if out := c.ok("manage", nairobi, "students", "export").stdout; strings.Count(out, "\n") != 1 {
			t.Fatalf("after a refused import, export has rows:\n%s", out)
		}
	})

	t.Run("CSV import, export, and no crossing of tenants", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "good.csv")
		os.WriteFile(path, []byte("registration_no,first_name,second_name\nN/1,Wanjiru,Kamau\nN/2,Otieno,Odhiambo\n"), 0o600)
		if out := c.ok("manage", nairobi, "students", "import", path).stdout; !strings.Contains(out, "Imported 2") {
			t.Fatalf("import: %q", out)
		}
		out := c.ok("manage", nairobi, "students", "export", "--no-bom").stdout
		want := exportCSV("N/1,Wanjiru,Kamau", "N/2,Otieno,Odhiambo")
		if out != want {
			t.Fatalf("export:\n%s\nwant:\n%s", out, want)
		}
		if out := c.ok("manage", accra, "students", "export").stdout; strings.Contains(out, "N/1") {
			t.Fatalf("accra's export shows nairobi's students:\n%s", out)
		}
		// Export from one tenant, import into another: a copy, not a link.
		r := c.run(out, nil, "manage", accra, "students", "import", "-")
		if r.code != 0 {
			t.Fatalf("import from stdin: %d %s", r.code, r.stderr)
		}
	})

	t.Run("suspend, resume, delete", func(t *testing.T) {
		if out := c.ok("tenant", "suspend", accra).stdout; !strings.Contains(out, "suspended") {
			t.Fatal(out)
		}
		r := c.run("", nil, "app", "--tenant", accra)
		if r.code != 1 || !strings.Contains(r.stderr, "suspended") {
			t.Fatalf("app of a suspended tenant: exit %d %q", r.code, r.stderr)
		}
		c.ok("tenant", "resume", accra)
		r = c.run("wrong\n", nil, "tenant", "delete", accra, "--purge-data")
		if r.code == 0 {
			t.Fatal("purge without the right confirmation succeeded")
		}
		c.ok("tenant", "show", accra) // still there
		out := c.ok("tenant", "delete", accra).stdout
		if !strings.Contains(out, "kept") {
			t.Fatalf("delete without --purge-data: %q", out)
		}
		if out := c.ok("tenant", "show", accra).stdout; !strings.Contains(out, "deleted") {
			t.Fatalf("deleted tenant shown as %q", out)
		}
		// Its name and host stay reserved until purged.
		if r := c.run("", nil, "tenant", "create", accra, "--host", accra+".school.localhost"); r.code == 0 {
			t.Fatal("create of a deleted tenant's name succeeded")
		}
		c.ok("tenant", "purge", accra, "--yes")
		if r := c.run("", nil, "tenant", "show", accra); r.code == 0 {
			t.Fatal("purged tenant still shown")
		}
		c.ok("tenant", "create", accra, "--host", accra+".school.localhost")
	})
}

// TestTokenCommandRefusals: `campus token` refuses what it cannot do, with
// a usage error (exit 2) and a message that says why.
func TestTokenCommandRefusals(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"token"}, "a COMMAND is required"},
		{"unknown command", []string{"token", "steal"}, `unknown token command "steal"`},
		{"embedded registry has no tokens", []string{"token", "tenant", "default"}, "the embedded registry has no tokens"},
		{"proxy token on the embedded registry", []string{"token", "proxy"}, "the embedded registry has no tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run("", nil, tc.args...)
			if r.code != 2 || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("campus %s: exit %d, output %q; want exit 2 and %q", strings.Join(tc.args, " "), r.code, r.stdout+r.stderr, tc.want)
			}
		})
	}
}

// Environment variables configure; they never confirm or destroy (issue
// 21): with CAMPUS_YES=1 and CAMPUS_PURGE_DATA=1 in the environment, a
// delete keeps the data, and a --purge-data asks (and, with nothing on
// standard input, refuses); --help shows no variable for those flags.
func TestEnvironmentNeverDestroys(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "env")
	purgeAtEnd(c, name)
	c.createSchool(name, "head", "E/1")
	danger := map[string]string{"CAMPUS_YES": "1", "CAMPUS_PURGE_DATA": "1", "CAMPUS_FORCE": "1", "CAMPUS_ALL": "1",
		"CAMPUS_EXPIRED": "1", "CAMPUS_HOST": "evil.localhost", "CAMPUS_AS": "evil"}
	r := c.run("", danger, "tenant", "delete", name, "--purge-data")
	if r.code == 0 || !strings.Contains(r.stderr, "Type the tenant name to confirm") {
		t.Errorf("--purge-data with CAMPUS_YES=1 did not ask: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := c.tenant(name); got.State != registry.StateActive {
		t.Errorf("after a refused --purge-data the tenant is %s", got.State)
	}
	r = c.run("", danger, "tenant", "delete", name)
	if r.code != 0 || !strings.Contains(r.stdout, "is kept until") {
		t.Fatalf("delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := c.tenant(name); got.State != registry.StateDeleted {
		t.Errorf("after delete the tenant is %s, want deleted with its data kept", got.State)
	}
	if n, err := mongotest.Client(t).Database(name).Collection("students").CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
		t.Errorf("the deleted tenant's students: %d %v; want kept", n, err)
	}
	// purge --expired from the environment: not a purge of everything.
	if r := c.run("", danger, "tenant", "purge"); r.code != 2 {
		t.Errorf("purge with CAMPUS_EXPIRED=1 and no NAME: exit %d, want a usage error\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"tenant", "delete", "--help"}, {"tenant", "purge", "--help"}, {"migrate", "--help"}, {"tenant", "backup", "--help"}} {
		r := c.run("", nil, args...)
		for _, v := range []string{"$CAMPUS_YES", "$CAMPUS_PURGE_DATA", "$CAMPUS_EXPIRED", "$CAMPUS_ALL", "$CAMPUS_FORCE", "$CAMPUS_HOST"} {
			if strings.Contains(r.stdout, v) {
				t.Errorf("campus %s shows %s", strings.Join(args, " "), v)
			}
		}
		if !strings.Contains(r.stdout, "$CAMPUS_DATA") {
			t.Errorf("campus %s does not show $CAMPUS_DATA:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

// describe words a typed error of the lifecycle where it stands: alone,
// or inside the context an operation added around it.
func TestDescribeKeepsContext(t *testing.T) {
	foreign := &tenancy.ForeignDatabaseError{Op: "purge", Tenant: registry.Tenant{Name: "accra", ID: "a1", Database: "accra"}, Stamp: "b2"}
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{foreign, []string{"purge tenant \"accra\"", "not dropping another tenant's data"}},
		{fmt.Errorf("2 tenants could not be purged: %w", errors.Join(errors.New("other"), foreign)),
			[]string{"2 tenants could not be purged: other\n", "not dropping another tenant's data"}},
		{&tenancy.UnknownTenantError{Name: "nope"}, []string{"unknown tenant \"nope\""}},
		{errors.New("plain"), []string{"plain"}},
	} {
		got := describe(tc.err)
		for _, w := range tc.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("describe(%v) = %q, want %q in it", tc.err, got, w)
			}
		}
		var fe *tenancy.ForeignDatabaseError
		if errors.As(tc.err, &fe) != errors.As(got, &fe) {
			t.Errorf("describe(%v) lost the typed error", tc.err)
		}
	}
}

// exportCSV is the CSV export (no BOM) of students with names only: every
// field of the record is a column, the status "enrolled".
func exportCSV(rows ...string) string {
	out := strings.Join(store.StudentFieldNames(), ",") + "\n"
	for _, r := range rows {
		out += r + ",,,,,,,enrolled,,,\n"
	}
	return out
}
