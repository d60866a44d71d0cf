package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/backup"
	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// dbDocs returns every document of database name, per collection, sorted.
func dbDocs(t *testing.T, name string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	db := mongotest.Client(t).Database(name)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	// As readers see them: the marks of imports and bulk deletes resolved
	// and taken off (store/operations.go), as a backup holds them.
	ops, err := store.ReadOperations(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			doc, ok, err := ops.ResolveDocument(n, cur.Current)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				out[n] = append(out[n], doc.String())
			}
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out[n])
	}
	return out
}

// addHistoryAndSession gives tenant name's database a history entry (a
// collection the store does not know yet) and a logged-in session.
func addHistoryAndSession(t *testing.T, name, admin string) {
	t.Helper()
	ctx := context.Background()
	db := mongotest.Client(t).Database(name)
	if _, err := db.Collection("history").InsertOne(ctx, bson.D{{Key: "what", Value: "imported students"}, {Key: "by", Value: admin}}); err != nil {
		t.Fatal(err)
	}
	st := store.New(db, store.Options{})
	u, err := st.Authenticate(ctx, admin, testPassword, "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateSession(ctx, u); err != nil {
		t.Fatal(err)
	}
}

func (c *cli) backupTo(name string) string {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), name+".campus.gz")
	out := c.ok("tenant", "backup", name, "-o", path).stdout
	if !strings.Contains(out, "Backed up tenant "+name) || !strings.Contains(out, "students 1") {
		c.t.Fatalf("backup output:\n%s", out)
	}
	return path
}

func TestBackupPurgeRestoreIsTheSameSchool(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "bk")
	purgeAtEnd(c, name)
	before := c.createSchool(name, "head", "BK/1")
	addHistoryAndSession(t, name, "head")
	docsBefore := dbDocs(t, name)
	exportBefore := c.ok("manage", name, "students", "export").stdout
	archive := c.backupTo(name)
	if _, err := os.Stat(archive + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the .partial file is left after a backup: %v", err)
	}

	c.ok("tenant", "delete", name, "--purge-data", "--yes")
	if c.registered(name) || len(collections(t, name)) != 0 {
		t.Fatal("purge left the tenant or its database")
	}
	out := c.ok("tenant", "restore", archive).stdout
	if !strings.Contains(out, "same ID") {
		t.Errorf("restore output:\n%s", out)
	}
	after := c.tenant(name)
	if after.ID != before.ID || after.State != registry.StateActive || !slices.Equal(after.Hosts, before.Hosts) ||
		after.DisplayName != before.DisplayName || after.Database != before.Database {
		t.Fatalf("restored %+v\nwant %+v", after, before)
	}
	if got := c.ok("manage", name, "students", "export").stdout; got != exportBefore {
		t.Errorf("students after restore:\n%s\nwant:\n%s", got, exportBefore)
	}
	docsAfter := dbDocs(t, name) // before a login changes last_login
	if !canLogIn(t, name, "head") {
		t.Error("the admin's password does not work after the restore")
	}
	for _, col := range []string{"students", "users", "history", "counters"} {
		if !slices.Equal(docsAfter[col], docsBefore[col]) {
			t.Errorf("%s after restore:\n%v\nwant:\n%v", col, docsAfter[col], docsBefore[col])
		}
	}
	if len(docsBefore["sessions"]) == 0 || len(docsAfter["sessions"]) != 0 {
		t.Errorf("sessions: %d before, %d after; want some, then none", len(docsBefore["sessions"]), len(docsAfter["sessions"]))
	}
	// The ID in the database is the tenant's: the app's start-up check passes.
	if id, err := store.New(mongotest.Client(t).Database(name), store.Options{}).TenantID(context.Background()); err != nil || id != before.ID {
		t.Errorf("restored database stamped %q (%v), want %s", id, err, before.ID)
	}
	// A new student gets a new ID, not a restored one's.
	csv := filepath.Join(t.TempDir(), "more.csv")
	os.WriteFile(csv, []byte("registration_no,first_name,second_name\nBK/2,Bo,Ng\n"), 0o600)
	c.ok("manage", name, "students", "import", csv)
}

// writeDamaged writes variants of a good archive that must restore nothing.
func damagedArchives(t *testing.T, good string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	rezip := func(p []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(p)
		w.Close()
		return buf.Bytes()
	}
	variants := map[string][]byte{
		"truncated-half":    b[:len(b)/2],
		"truncated-end":     b[:len(b)-1],
		"no-trailer":        rezip(plain[:bytes.LastIndex(plain[:len(plain)-1], []byte("\n"))+1]),
		"altered":           rezip(bytes.Replace(plain, []byte("Ada"), []byte("Eve"), 1)),
		"not-an-archive.gz": []byte("registration_no,first_name,second_name\n"),
	}
	dir := t.TempDir()
	out := map[string]string{}
	for n, data := range variants {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	return out
}

func TestDamagedOrFailedRestoreRestoresNothing(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "dmg")
	purgeAtEnd(c, name)
	c.createSchool(name, "head", "DMG/1")
	archive := c.backupTo(name)
	c.ok("tenant", "delete", name, "--purge-data", "--yes")

	nothingLeft := func(t *testing.T) {
		t.Helper()
		if c.registered(name) {
			t.Errorf("tenant %s is registered after a failed restore", name)
		}
		if cols := collections(t, name); len(cols) != 0 {
			t.Errorf("database %s holds %v after a failed restore", name, cols)
		}
	}
	for variant, path := range damagedArchives(t, archive) {
		t.Run(variant, func(t *testing.T) {
			r := c.run("", nil, "tenant", "restore", path)
			if r.code != 1 || !strings.Contains(r.stderr, "not a valid Campus tenant archive") || !strings.Contains(r.stderr, "nothing was restored") {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			nothingLeft(t)
		})
	}
	// A failure while the documents are written, and one just before the
	// tenant is activated, undo everything.
	t.Run("fails while writing", func(t *testing.T) {
		batches := 0
		hooks.BeforeBatch = func(string, int) error {
			if batches++; batches == 2 {
				return errors.New("disk full (test)")
			}
			return nil
		}
		defer func() { hooks.BeforeBatch = nil }()
		r := c.run("", nil, "tenant", "restore", archive)
		if r.code != 1 || !strings.Contains(r.stderr, "disk full") || !strings.Contains(r.stderr, "nothing was kept") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if batches < 2 {
			t.Fatalf("only %d batches: the failure came before any write", batches)
		}
		nothingLeft(t)
	})
	t.Run("fails before activation", func(t *testing.T) {
		hooks.BeforeActivate = func(registry.Tenant) error { return errors.New("lost the registry (test)") }
		defer func() { hooks.BeforeActivate = nil }()
		r := c.run("", nil, "tenant", "restore", archive)
		if r.code != 1 || !strings.Contains(r.stderr, "nothing was kept") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		nothingLeft(t)
	})
	// The good archive still restores.
	c.ok("tenant", "restore", archive)
	if !canLogIn(t, name, "head") {
		t.Error("restore after the failures: admin cannot log in")
	}
}

// Restoring one school's archive never touches another school: not under
// the name it has taken since, not with --as an existing name, not over
// the live school itself.
func TestRestoreNeverWritesIntoAnotherTenant(t *testing.T) {
	c := newCLI(t)
	a, other := uniqueTenant(t, "sa"), uniqueTenant(t, "sb")
	copyName := uniqueTenant(t, "sc")
	purgeAtEnd(c, a, other, copyName)
	schoolA := c.createSchool(a, "heada", "A/1")
	archive := c.backupTo(a)

	// Over the live school itself: refused.
	r := c.run("", nil, "tenant", "restore", archive)
	if r.code != 1 || !strings.Contains(r.stderr, "still exists") {
		t.Fatalf("restore over the live tenant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A is purged and another school takes its name: the archive is A's,
	// not the new school's.
	c.ok("tenant", "delete", a, "--purge-data", "--yes")
	schoolB := c.createSchool(a, "headb", "B/1")
	c.createSchool(other, "heado", "O/1")
	if schoolB.ID == schoolA.ID {
		t.Fatal("same ID for two schools")
	}
	bDocs, oDocs := dbDocs(t, a), dbDocs(t, other)
	r = c.run("", nil, "tenant", "restore", archive)
	if r.code != 1 || !strings.Contains(r.stderr, "belongs to another school") || !strings.Contains(r.stderr, "--as") {
		t.Fatalf("restore over another school: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --as the name of an existing tenant: refused.
	r = c.run("", nil, "tenant", "restore", archive, "--as", other, "--host", "x-"+other+".school.localhost")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("restore --as an existing tenant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --as a new name with the archive's hosts (now B's): refused too.
	r = c.run("", nil, "tenant", "restore", archive, "--as", copyName)
	if r.code != 1 || !strings.Contains(r.stderr, "already belongs to tenant") {
		t.Fatalf("restore --as with hosts of another tenant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if c.registered(copyName) || len(collections(t, copyName)) != 0 {
		t.Fatal("a refused restore left something")
	}
	if got := dbDocs(t, a); !mapsEqual(got, bDocs) {
		t.Errorf("school B's database changed:\n%v\nwant\n%v", got, bDocs)
	}
	if got := dbDocs(t, other); !mapsEqual(got, oDocs) {
		t.Error("the other school's database changed")
	}
	if !canLogIn(t, a, "headb") || canLogIn(t, a, "heada") {
		t.Error("school B's admins changed")
	}
	bDocs = dbDocs(t, a) // the logins just made changed last_login

	// Asked for explicitly, with a new name and hosts: a new tenant, new ID.
	out := c.ok("tenant", "restore", archive, "--as", copyName, "--host", copyName+".school.localhost").stdout
	if !strings.Contains(out, "new ID") {
		t.Errorf("restore --as output:\n%s", out)
	}
	cp := c.tenant(copyName)
	if cp.ID == schoolA.ID || cp.ID == schoolB.ID || cp.Database != copyName || !slices.Equal(cp.Hosts, []string{copyName + ".school.localhost"}) {
		t.Fatalf("restored copy %+v", cp)
	}
	if !canLogIn(t, copyName, "heada") || !strings.Contains(c.ok("manage", copyName, "students", "export").stdout, "A/1") {
		t.Error("the copy lacks A's admin or students")
	}
	if got := dbDocs(t, a); !mapsEqual(got, bDocs) {
		t.Error("school B's database changed after the --as restore")
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestBackupRefusals(t *testing.T) {
	c := newCLI(t)
	name := uniqueTenant(t, "bref")
	purgeAtEnd(c, name)
	c.createSchool(name, "head", "R/1")
	path := c.backupTo(name)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"tenant", "backup", "nope-" + name}, "unknown tenant"},
		{[]string{"tenant", "backup", name, "-o", path}, "already exists"},
		{[]string{"tenant", "backup", name, "--consistency", "sometimes"}, "want auto"},
		{[]string{"tenant", "restore", filepath.Join(t.TempDir(), "missing.gz")}, "no such file"},
		{[]string{"tenant", "restore", path, "--as", "Bad_Name"}, "--as"},
	}
	for _, tc := range cases {
		r := c.run("", nil, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("campus %s: exit %d, want an error mentioning %q\n%s", strings.Join(tc.args, " "), r.code, tc.want, r.stderr)
		}
	}
	// Where the server has no snapshot reads (FerretDB, a standalone
	// mongod), --consistency snapshot fails and leaves no file.
	snap, err := backup.SnapshotSupported(context.Background(), mongotest.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.run("", nil, "tenant", "backup", name, "--consistency", "snapshot", "-o", path+"2"); snap != (r.code == 0) ||
		(!snap && !strings.Contains(r.stderr, "no snapshot reads")) {
		t.Errorf("--consistency snapshot (server supports it: %v): exit %d %s", snap, r.code, r.stderr)
	}
	if snap {
		os.Remove(path + "2")
	}
	if _, err := os.Stat(path + "2"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed backup left its file")
	}
	if _, err := os.Stat(path + "2.partial"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed backup left its .partial file")
	}
	// --consistency suspend on an active tenant: it is served again after.
	out := c.ok("tenant", "backup", name, "--consistency", "suspend", "-o", path+"3").stdout
	if !strings.Contains(out, "consistency suspended") {
		t.Errorf("suspend backup output:\n%s", out)
	}
	if st := c.tenant(name).State; st != registry.StateActive {
		t.Errorf("after a suspend backup the tenant is %s, want active", st)
	}
	// A deleted tenant (data kept) is brought back by name, not by archive.
	c.ok("tenant", "delete", name)
	r := c.run("", nil, "tenant", "restore", path)
	if r.code != 1 || !strings.Contains(r.stderr, "is deleted but its data is kept") {
		t.Errorf("restore FILE over a deleted tenant: exit %d %s", r.code, r.stderr)
	}
	c.ok("tenant", "restore", name)
}

// backup --all (what cron and the Nomad periodic job run): every tenant,
// one failure does not stop the others, retention keeps the newest.
func TestBackupAllWithRetention(t *testing.T) {
	c := newCLI(t)
	a, b, broken := uniqueTenant(t, "ba"), uniqueTenant(t, "bb"), uniqueTenant(t, "bx")
	purgeAtEnd(c, a, b, broken)
	c.createSchool(a, "head", "A/1")
	c.createSchool(b, "head", "B/1")
	c.createSchool(broken, "head", "X/1")
	// broken's database claims to be a's: it is not backed up as broken's.
	if _, err := mongotest.Client(t).Database(broken).Collection("meta").UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: "tenant"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "tenant_id", Value: c.tenant(a).ID}}}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Older archives of a (real ones), and files retention must never
	// remove: not named as a's archives, named so but not an archive, or
	// an archive of another tenant (issue 25).
	archiveOf := func(name string) []byte {
		f := filepath.Join(t.TempDir(), name+".campus.gz")
		if r := c.run("", nil, "tenant", "backup", name, "-o", f); r.code != 0 {
			t.Fatalf("backup %s: %s", name, r.stderr)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	ofA, ofB := archiveOf(a), archiveOf(b)
	old := []string{a + "-20250101T000000Z.campus.gz", a + "-20250102T000000Z.campus.gz", a + "-20250103T000000Z.campus.gz"}
	keepAlways := map[string][]byte{"notes.txt": []byte("old"), a + "-x-20240101T000000Z.campus.gz": []byte("old"),
		a + "-20240101T000000Z.campus.gz": []byte("not an archive"), a + "-20240102T000000Z.campus.gz": ofB}
	os.MkdirAll(filepath.Join(dir, a), 0o700)
	for _, f := range old {
		os.WriteFile(filepath.Join(dir, a, f), ofA, 0o600)
	}
	for f, data := range keepAlways {
		os.WriteFile(filepath.Join(dir, a, f), data, 0o600)
	}
	r := c.run("", nil, "tenant", "backup", "--all", "--dir", dir, "--keep", "2")
	if r.code != 1 || !strings.Contains(r.stderr, "1 tenants were not backed up ("+broken+")") || !strings.Contains(r.stdout, "Backed up 2 tenants") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, n := range []string{a, b} {
		files, _ := filepath.Glob(filepath.Join(dir, n, n+"-2*.campus.gz"))
		var fresh string
		for _, f := range files {
			if !strings.Contains(f, "-2025") {
				fresh = f
			}
		}
		if fresh == "" {
			t.Fatalf("no new archive of %s in %v", n, files)
		}
		r := c.run("", nil, "tenant", "restore", fresh, "--as", "v-"+n[:10], "--host", "v-"+n[:10]+".school.localhost")
		if r.code != 0 {
			t.Errorf("the archive of %s does not restore: %s", n, r.stderr)
		}
		purgeAtEnd(c, "v-"+n[:10])
	}
	left, _ := os.ReadDir(filepath.Join(dir, a))
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if slices.Contains(names, old[0]) || slices.Contains(names, old[1]) || !slices.Contains(names, old[2]) {
		t.Errorf("retention --keep 2 left %v; want the newest old one and the new one", names)
	}
	for f := range keepAlways {
		if !slices.Contains(names, f) {
			t.Errorf("retention removed %s, which is not an archive of %s", f, a)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, broken, "*")); len(files) != 0 {
		t.Errorf("a refused backup left %v", files)
	}
}

// `tenant backup --all --dir D --keep N` stays in D (issue 25): a tenant
// folder that is a symbolic link out of D is neither written through nor
// pruned, and a link named as an archive is not followed or removed.
func TestBackupAllStaysInItsFolder(t *testing.T) {
	c := newCLI(t)
	a, b := uniqueTenant(t, "sa"), uniqueTenant(t, "sb")
	purgeAtEnd(c, a, b)
	c.createSchool(a, "head", "A/1")
	c.createSchool(b, "head", "B/1")
	dir, outside := t.TempDir(), t.TempDir()
	// a's folder is a link to a folder outside D, holding what look like
	// old archives of a.
	outsideFiles := []string{a + "-20200101T000000Z.campus.gz", a + "-20200102T000000Z.campus.gz"}
	for _, f := range outsideFiles {
		if err := os.WriteFile(filepath.Join(outside, f), []byte("someone else's"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, a)); err != nil {
		t.Fatal(err)
	}
	// b's folder is real, but holds a link named as an old archive of b,
	// pointing outside.
	target := filepath.Join(outside, "precious")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, b), 0o700)
	link := filepath.Join(dir, b, b+"-20200101T000000Z.campus.gz")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r := c.run("", nil, "tenant", "backup", "--all", "--dir", dir, "--keep", "1")
	if r.code != 1 || !strings.Contains(r.stderr, a) || !strings.Contains(r.stderr, "not a folder") {
		t.Errorf("exit %d, want a refused\n%s%s", r.code, r.stdout, r.stderr)
	}
	left, _ := os.ReadDir(outside)
	if len(left) != len(outsideFiles)+1 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("the folder outside D now holds %v; want it untouched", names)
	}
	for _, f := range outsideFiles {
		if data, err := os.ReadFile(filepath.Join(outside, f)); err != nil || string(data) != "someone else's" {
			t.Errorf("%s outside D: %q %v", f, data, err)
		}
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("the link in b's folder was removed: %v", err)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "precious" {
		t.Errorf("the link's target: %q %v", data, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, b, b+"-2*.campus.gz")); len(files) != 2 {
		t.Errorf("b's folder holds %v; want the link and the new archive", files)
	}
}
