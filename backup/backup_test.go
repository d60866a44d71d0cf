package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// school is a tenant database with a registry record whose Database is
// its name (mongotest's "t_…" names are not tenant names).
type school struct {
	tenant registry.Tenant
	db     *mongo.Database
	st     *store.Store
}

func newSchool(t *testing.T, base string) school {
	t.Helper()
	name := base + "-" + strings.TrimPrefix(mongotest.NewName(t), "t_")[:10]
	tn, err := registry.NewTenant(name, []string{name + ".school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	db := mongotest.Client(t).Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.Drop(ctx)
	})
	st := store.New(db, store.Options{BcryptCost: bcrypt.MinCost})
	if _, _, err := st.MigrateTenant(t.Context(), tn.ID); err != nil {
		t.Fatal(err)
	}
	return school{tn, db, st}
}

// fill gives a school students, an admin with a session and a failed
// login, and a collection no store code knows (as history will be).
func (s school) fill(t *testing.T, marker string, students int) {
	t.Helper()
	ctx := t.Context()
	var rows []store.StudentInput
	var lines []int
	for i := range students {
		rows = append(rows, store.StudentInput{RegistrationNo: fmt.Sprintf("%s/%d", marker, i), FirstName: "Ada" + marker, SecondName: "Obi"})
		lines = append(lines, i+2)
	}
	if len(rows) > 0 {
		if _, rerr, err := s.st.ImportStudents(ctx, rows, lines); err != nil || len(rerr) > 0 {
			t.Fatal(err, rerr)
		}
	}
	u, err := s.st.CreateSuperuser(ctx, "head-"+strings.ToLower(marker), "", "long-enough-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.st.CreateSession(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.Authenticate(ctx, u.Username, "wrong-password", "192.0.2.9"); !errors.Is(err, store.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = s.db.Collection("history").InsertOne(ctx, bson.D{
		{Key: "what", Value: "created " + marker}, {Key: "n", Value: int32(7)}, {Key: "big", Value: int64(1) << 40},
		{Key: "at", Value: time.Now()}, {Key: "tags", Value: bson.A{"x", 1.5}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Collection("password_resets").InsertOne(ctx, bson.D{{Key: "_id", Value: "token-hash"}}); err != nil {
		t.Fatal(err)
	}
}

// docs returns every document of every collection of db, as BSON bytes
// sorted within each collection.
// docs is every document of db, as readers see them: the marks of
// imports and bulk deletes resolved and taken off (store/operations.go),
// as a backup holds them.
func docs(t *testing.T, db *mongo.Database) map[string][]string {
	t.Helper()
	ctx := t.Context()
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
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
		var all []string
		for cur.Next(ctx) {
			doc, ok, err := ops.ResolveDocument(n, cur.Current)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				all = append(all, string(doc))
			}
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(all)
		out[n] = all
	}
	return out
}

func dump(t *testing.T, s school) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := Dump(t.Context(), s.db, &buf, DumpOptions{Tenant: s.tenant, CampusVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

func TestDumpVerifyLoadRoundTrip(t *testing.T) {
	ctx := t.Context()
	a := newSchool(t, "rt")
	a.fill(t, "A", 25)
	archive, sum := dump(t, a)

	snap, err := SnapshotSupported(ctx, a.db.Client())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]Consistency{true: Snapshot, false: Live}[snap]; sum.Header.Consistency != want {
		t.Errorf("consistency %q, want %q (server has snapshot reads: %v; FerretDB has none)", sum.Header.Consistency, want, snap)
	}
	want := []string{"groups", "history", "history_chain", "history_names", "history_students", "students", "users", "id_claims", "counters", "meta"}
	if !slices.Equal(sum.Collections, want) {
		t.Errorf("collections %v, want %v (no sessions, login_failures, password_resets or students_journal; id_claims, counters and meta last)", sum.Collections, want)
	}
	if sum.Trailer.Collections["students"] != 25 || sum.Trailer.Collections["meta"] != 1 {
		t.Errorf("counts %v", sum.Trailer.Collections)
	}
	v, err := Verify(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if v.Tenant.ID != a.tenant.ID || !v.Tenant.Equal(a.tenant) || v.Trailer.SHA256 != sum.Trailer.SHA256 || v.Header.SchemaVersion != store.SchemaVersion {
		t.Errorf("verify: %+v\nwant tenant %+v", v, a.tenant)
	}

	dst := mongotest.Database(t)
	if _, err := Load(ctx, bytes.NewReader(archive), dst, LoadOptions{BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	got, orig := docs(t, dst), docs(t, a.db)
	for _, n := range []string{"students", "users", "history", "counters"} {
		if len(orig[n]) == 0 || !slices.Equal(got[n], orig[n]) {
			t.Errorf("%s: restored %d documents, want the %d originals byte for byte", n, len(got[n]), len(orig[n]))
		}
	}
	for _, n := range []string{"sessions", "login_failures", "password_resets"} {
		if len(orig[n]) == 0 {
			t.Errorf("the source has no %s: the exclusion is not tested", n)
		}
		if len(got[n]) != 0 {
			t.Errorf("%s restored (%d documents); it must be left out", n, len(got[n]))
		}
	}
	// The schema version travels; the tenant stamp does not.
	if len(got["meta"]) != 1 || !strings.Contains(bson.Raw(got["meta"][0]).String(), `"schema"`) {
		t.Errorf("restored meta %v, want the schema document alone", got["meta"])
	}
	rs := store.New(dst, store.Options{})
	if id, err := rs.TenantID(ctx); err != nil || id != "" {
		t.Errorf("restored database stamped %q (%v); the restore stamps it, not the archive", id, err)
	}
	if _, err := rs.Authenticate(ctx, "head-a", "long-enough-pw", "192.0.2.1"); err != nil {
		t.Errorf("the admin's password does not work after the round trip: %v", err)
	}
}

// gunzip and regzip let a test alter the uncompressed lines.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func regzip(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDamagedArchivesAreRefused(t *testing.T) {
	a := newSchool(t, "bad")
	a.fill(t, "B", 40)
	archive, _ := dump(t, a)
	plain := gunzip(t, archive)
	lines := strings.SplitAfter(string(plain), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	trailer := lines[len(lines)-1]
	body := strings.Join(lines[:len(lines)-1], "")

	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty file", "not gzip", nil},
		{"not gzip", "not gzip", []byte("registration_no,first_name\n")},
		{"truncated gzip, half", "", archive[:len(archive)/2]},
		{"truncated gzip, last bytes", "", archive[:len(archive)-3]},
		{"no trailer", "without its trailer", regzip([]byte(body))},
		{"cut inside a line", "truncated", regzip(plain[:len(plain)-len(trailer)/2])},
		{"one document changed", "checksum mismatch", regzip([]byte(strings.Replace(body, "AdaB", "AdaX", 1) + trailer))},
		{"one document dropped", "checksum mismatch", regzip([]byte(strings.Join(slices.Delete(slices.Clone(lines), 3, 4), "")))},
		{"data after the trailer", "after the trailer", regzip([]byte(body + trailer + `{"doc":{}}` + "\n"))},
		{"second gzip member", "after the trailer", append(slices.Clone(archive), regzip([]byte(`{"doc":{}}`+"\n"))...)},
		{"newer format", "newer than this campus", regzip([]byte(strings.Replace(body, `"version":1,`, `"version":2,`, 1) + trailer))},
		{"newer schema", "newer than this campus knows", regzip([]byte(strings.Replace(body, fmt.Sprintf(`"schema_version":%d`, store.SchemaVersion), `"schema_version":999`, 1) + trailer))},
		{"sessions smuggled in", "not one a backup writes", regzip([]byte(body + `{"collection":"sessions"}` + "\n" + trailer))},
		{"foreign tenant stamp", "tenant-ID stamp", regzip([]byte(body + `{"collection":"meta2"}` + "\n" + trailer))},
	}
	// The stamp case needs a real meta line: swap the schema doc for a stamp.
	stamped := strings.Replace(body, `{"doc":{"_id":"schema"`, `{"doc":{"_id":"tenant","tenant_id":"x"`, 1)
	if stamped == body {
		t.Fatal("no schema document in the archive to replace")
	}
	cases[len(cases)-1].data = regzip([]byte(stamped + trailer))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(c.data))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify: %v; want ErrCorrupt mentioning %q", err, c.want)
			}
			dst := mongotest.Database(t)
			if _, err := Load(t.Context(), bytes.NewReader(c.data), dst, LoadOptions{}); err == nil {
				t.Fatal("Load accepted it")
			}
		})
	}
}

// A backup streams: the first documents are written while most are still
// unread in the database.
func TestDumpStreams(t *testing.T) {
	a := newSchool(t, "stream")
	const n = 3000
	a.fill(t, "S", n)
	var fetched atomic.Int64
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := Dump(context.Background(), a.db, pw, DumpOptions{Tenant: a.tenant, BatchSize: 50, Fetched: &fetched})
		pw.CloseWithError(err)
		done <- err
	}()
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	br := bytes.NewBuffer(nil)
	buf := make([]byte, 1)
	for !strings.Contains(br.String(), `"registration_no":"S/`) {
		if _, err := zr.Read(buf); err != nil {
			t.Fatalf("read: %v", err)
		}
		br.Write(buf)
	}
	// The dump now blocks on the pipe; whatever it fetched so far is all
	// it holds.
	if got := fetched.Load(); got >= n {
		t.Fatalf("%d of %d students fetched before the first was written: the backup does not stream", got, n)
	}
	t.Logf("first student written after %d of %d documents were fetched", fetched.Load(), n)
	if _, err := io.Copy(io.Discard, zr); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A backup of school A holds nothing of school B, and Dump refuses a
// database that is not the tenant's own.
func TestBackupOfAHoldsNothingOfB(t *testing.T) {
	a, b := newSchool(t, "iso-a"), newSchool(t, "iso-b")
	a.fill(t, "AAA", 10)
	b.fill(t, "BBB", 10)
	archive, _ := dump(t, a)
	plain := string(gunzip(t, archive))
	for _, leak := range []string{"BBB", "head-bbb", b.tenant.ID, b.tenant.Name} {
		if strings.Contains(plain, leak) {
			t.Errorf("A's archive contains %q of B", leak)
		}
	}
	if !strings.Contains(plain, "AAA/9") {
		t.Error("A's archive lacks A's students")
	}
	_, err := Dump(t.Context(), b.db, io.Discard, DumpOptions{Tenant: a.tenant})
	if err == nil || !strings.Contains(err.Error(), "is not its database") {
		t.Errorf("Dump of B's database with A's record: %v", err)
	}
}

func TestExcluded(t *testing.T) {
	for name, want := range map[string]bool{
		"sessions": true, "login_failures": true, "password_resets": true, "system.views": true, "students_journal": true, "students_snapshot": true,
		"students": false, "users": false, "history": false, "meta": false, "counters": false,
	} {
		if got := Excluded(name); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", name, got, want)
		}
	}
}

// An archive crafted with a valid checksum but a malformed document passes
// Verify (which trusts the checksum for documents) and fails in Load; the
// caller then drops the database (cmd/campus tests that nothing is kept).
func TestCraftedDocumentFailsInLoad(t *testing.T) {
	a := newSchool(t, "craft")
	a.fill(t, "C", 3)
	archive, _ := dump(t, a)
	plain := string(gunzip(t, archive))
	lines := strings.SplitAfter(plain, "\n")
	body := strings.Join(lines[:len(lines)-2], "")
	crafted0 := strings.Replace(body, `{"doc":{"_id":"0000000000000000001"`, `{"doc":{"_id":{"$numberLong":"x1"}`, 1) // a student (schema 4)
	if crafted0 == body {
		t.Fatal("no student 1 in the archive")
	}
	body = crafted0
	var c Trailer
	sum := sha256.Sum256([]byte(body))
	v, err := Verify(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	c = v.Trailer
	c.SHA256 = hex.EncodeToString(sum[:])
	tr, _ := json.Marshal(map[string]any{"trailer": c})
	crafted := regzip([]byte(body + string(tr) + "\n"))
	if _, err := Verify(bytes.NewReader(crafted)); err != nil {
		t.Fatalf("Verify: %v (the crafted archive should pass the checksum)", err)
	}
	_, err = Load(t.Context(), bytes.NewReader(crafted), mongotest.Database(t), LoadOptions{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load: %v, want ErrCorrupt", err)
	}
}

// TestDumpLeavesOutPendingOperation: a backup taken while an import runs
// (store/operations.go: its rows and entry written, not committed) holds
// none of it, and all of it once committed, without operation marks.
func TestDumpLeavesOutPendingOperation(t *testing.T) {
	ctx := t.Context()
	a := newSchool(t, "op")
	a.fill(t, "A", 5)
	_, before := dump(t, a)
	seq := int64(1 << 20)
	if _, err := a.db.Collection("operations").InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("op:%d", seq)},
		{Key: "seq", Value: seq}, {Key: "kind", Value: "import"}, {Key: "beat", Value: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Collection("students").InsertOne(ctx, bson.D{{Key: "_id", Value: int64(1 << 40)},
		{Key: "registration_no", Value: "P/1"}, {Key: "first_name", Value: "Pending"}, {Key: "second_name", Value: "Row"}, {Key: "ins", Value: seq}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Collection("history").InsertOne(ctx, bson.D{{Key: "_id", Value: "pending-entry"}, {Key: "action", Value: "import"}, {Key: "op", Value: seq}}); err != nil {
		t.Fatal(err)
	}
	_, pending := dump(t, a)
	for _, n := range []string{"students", "history"} {
		if pending.Trailer.Collections[n] != before.Trailer.Collections[n] {
			t.Errorf("%s: %d documents while the import is pending, want %d as before it", n, pending.Trailer.Collections[n], before.Trailer.Collections[n])
		}
	}
	if slices.Contains(pending.Collections, "operations") {
		t.Error("the archive holds the operations")
	}
	if _, err := a.db.Collection("operations").InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("op:%d:end", seq)},
		{Key: "seq", Value: seq}, {Key: "state", Value: "committed"}}); err != nil {
		t.Fatal(err)
	}
	_, committed := dump(t, a)
	for _, n := range []string{"students", "history"} {
		if committed.Trailer.Collections[n] != before.Trailer.Collections[n]+1 {
			t.Errorf("%s: %d documents once committed, want %d", n, committed.Trailer.Collections[n], before.Trailer.Collections[n]+1)
		}
	}
}
