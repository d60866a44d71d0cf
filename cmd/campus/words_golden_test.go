package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/campus-saas/campus/tenancy"
)

var updateGolden = flag.Bool("update", false, "rewrite cmd/campus/testdata/*.golden with what the commands print now")

// TestMessagesGolden runs, in-process, each command line an operator typed
// when the wording of issue 28 was written (a display name as the tenant
// name, no --host, a URL for a host, a host added twice, a duplicate in a
// CLI import, createsuperuser with piped input, --help's defaults, the
// values in force in `tenant list`, a restore beside the original) and
// compares what it prints, and its exit code, with
// testdata/NAME.golden. Run with -update to rewrite the files after a
// deliberate change of words, and read the diff.
func TestMessagesGolden(t *testing.T) {
	c := newCLI(t)
	data := c.env["CAMPUS_DATA"]
	lagos := uniqueTenant(t, "lagos")
	t.Cleanup(func() {
		for _, n := range []string{lagos, lagos + "-copy", lagos + "-two"} {
			c.run("", nil, "tenant", "delete", n, "--purge-data", "--yes")
		}
	})
	// What `campus dev --idle-timeout 30s --memory 768MiB` records for the
	// commands of other terminals.
	if err := tenancy.WriteDevState(data, tenancy.DevState{IdleTimeout: "30s", Memory: "768MiB"}); err != nil {
		t.Fatal(err)
	}
	c.ok("tenant", "create", lagos, "--host", lagos+".school.localhost", "--display-name", "Lagos School")
	c.ok("tenant", "set", lagos, "--memory", "1GiB")
	files := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c.ok("manage", lagos, "students", "import", write("first.csv", "registration_no,first_name,second_name\nS-1,Ada,Obi\nS-2,Bola,Ade\n"))
	oneDup := write("one-dup.csv", "registration_no,first_name,second_name\nS-1,Ada,Obi\nS-3,Chi,Eze\n")
	twoDups := write("two-dups.csv", "registration_no,first_name,second_name\ns-1,Ada,Obi\nS-2,Bola,Ade\n")
	archive := filepath.Join(files, "lagos.campus.gz")

	// A data folder of `campus dev` whose embedded database is on a port
	// of its own, for --help to find.
	devData := t.TempDir()
	if err := tenancy.WriteDevState(devData, tenancy.DevState{MongoURI: "mongodb://127.0.0.1:27999"}); err != nil {
		t.Fatal(err)
	}
	noEnvURI := map[string]string{"MONGODB_URI": "", "CAMPUS_DATA": devData}

	cases := []struct {
		name  string
		stdin string
		env   map[string]string
		args  []string
	}{
		{"tenant-create-display-name-as-name", "", nil, []string{"tenant", "create", "Kisumu School"}},
		{"tenant-create-no-host", "", nil, []string{"tenant", "create", "kisumu"}},
		{"tenant-create-url-host", "", nil, []string{"tenant", "create", "kisumu", "--host", "https://kisumu.example.org/admin/", "--display-name", "Kisumu School"}},
		{"tenant-create-mistyped-flag", "", nil, []string{"tenant", "create", "kisumu", "--hots", "kisumu.school.localhost"}},
		{"tenant-create-reserved", "", nil, []string{"tenant", "create", "admin", "--host", "admin.school.localhost"}},
		{"tenant-create-superuser-no-password", "", nil, []string{"tenant", "create", "kisumu", "--host", "kisumu.school.localhost", "--superuser", "head"}},
		{"tenant-host-add-url", "", nil, []string{"tenant", "host", "add", lagos, "http://foo.example/"}},
		{"tenant-host-add-unchanged", "", nil, []string{"tenant", "host", "add", lagos, strings.ToUpper(lagos) + ".School.Localhost:8000"}},
		{"tenant-host-add", "", nil, []string{"tenant", "host", "add", lagos, "Records.Lagos.Example.org:8000"}},
		{"tenant-host-remove-absent", "", nil, []string{"tenant", "host", "remove", lagos, "nothere.example.org"}},
		{"tenant-set-unknown", "", nil, []string{"tenant", "set", "nobody-here", "--idle-timeout", "5m"}},
		{"tenant-list-in-force", "", nil, []string{"tenant", "list"}},
		{"tenant-show-in-force", "", nil, []string{"tenant", "show", lagos}},
		{"tenant-set-default", "", nil, []string{"tenant", "set", lagos, "--idle-timeout", "default"}},
		{"manage-display-name-as-name", "", nil, []string{"manage", "Lagos School", "createsuperuser"}},
		{"import-one-duplicate", "", nil, []string{"manage", lagos, "students", "import", oneDup}},
		{"import-two-duplicates", "", nil, []string{"manage", lagos, "students", "import", twoDups}},
		{"createsuperuser-piped-no-password", "head\n\n", nil, []string{"manage", lagos, "createsuperuser"}},
		{"createsuperuser-password-stdin-no-username", "long-enough-pw\n", nil, []string{"manage", lagos, "createsuperuser", "--password-stdin"}},
		{"createsuperuser-password-stdin", "long-enough-pw\n", nil, []string{"manage", lagos, "createsuperuser", "--username", "head", "--password-stdin"}},
		{"changepassword-piped-once", "one-long-password\n", nil, []string{"manage", lagos, "changepassword", "head"}},
		{"tenant-purge-data-no-answer", "", nil, []string{"tenant", "delete", lagos, "--purge-data"}},
		{"tenant-backup-help-dev-database", "", noEnvURI, []string{"tenant", "backup", "--help"}},
		{"tenant-backup", "", nil, []string{"tenant", "backup", lagos, "-o", archive}},
		{"tenant-restore-as-display-name", "", nil, []string{"tenant", "restore", archive, "--as", lagos + "-copy",
			"--host", lagos + "-copy.school.localhost", "--display-name", "Lagos School (copy)"}},
		{"tenant-restore-as-taken", "", nil, []string{"tenant", "restore", archive, "--as", lagos + "-copy"}},
		{"tenant-restore-as-default-display-name", "", nil, []string{"tenant", "restore", archive, "--as", lagos + "-two",
			"--host", lagos + "-two.school.localhost"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(tc.stdin, tc.env, tc.args...)
			got := normalizeOutput("$ campus "+quoteArgs(tc.args)+"\nexit "+strconv.Itoa(r.code)+"\n--- stdout\n"+r.stdout+"--- stderr\n"+r.stderr,
				map[string]string{lagos: "lagos", strings.ToUpper(lagos): "LAGOS", data: "$DATA", devData: "$DEVDATA", files: "$FILES", c.env["MONGODB_URI"]: "$MONGODB_URI"})
			path := filepath.Join("testdata", tc.name+".golden")
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./cmd/campus -run TestMessagesGolden -update` to write it)", err)
			}
			if got != string(want) {
				t.Errorf("campus %s printed, against %s:\n%s\nwant:\n%s", quoteArgs(tc.args), path, got, want)
			}
		})
	}
}

var (
	goldenSHA  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	goldenID   = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
	goldenTime = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b`)
)

// normalizeOutput replaces what changes from run to run (names made
// unique, folders, IDs, checksums, times) with placeholders.
func normalizeOutput(s string, replace map[string]string) string {
	// Longest first: a folder may hold another.
	keys := make([]string, 0, len(replace))
	for k := range replace {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, replace[k])
	}
	s = goldenSHA.ReplaceAllString(s, "<SHA256>")
	s = goldenID.ReplaceAllString(s, "<ID>")
	return goldenTime.ReplaceAllString(s, "<TIME>")
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
