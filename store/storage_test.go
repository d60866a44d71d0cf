package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/internal/mongotest"
)

// ferretFull is the error FerretDB's SQLite backend answers an insert
// with when the disk is full, as campus dev showed it.
const ferretFull = "[msg_insert.go:168 handler.(*Handler).MsgInsert] [db.go:167 fsql.(*DB).InTransaction] database or disk is full (13)"

func TestStorageFullRecognised(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		code     int
		reason   string
		notFull  bool
		causeHas string
	}{
		{name: "FerretDB insertMany", err: mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 1, Message: ferretFull}}}},
			code: CodeSQLiteFull, reason: ReasonSQLiteFull, causeHas: "database or disk is full (13)"},
		{name: "FerretDB insertOne", err: mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 1, Message: ferretFull}}},
			code: CodeSQLiteFull, reason: ReasonSQLiteFull},
		{name: "FerretDB findAndModify", err: mongo.CommandError{Code: 1, Name: "InternalError", Message: ferretFull},
			code: CodeSQLiteFull, reason: ReasonSQLiteFull},
		{name: "MongoDB OutOfDiskSpace", err: mongo.CommandError{Code: CodeOutOfDiskSpace, Name: "OutOfDiskSpace", Message: "Insufficient disk space"},
			code: CodeOutOfDiskSpace, reason: ReasonOutOfDiskSpace},
		{name: "MongoDB write error 14031", err: mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: CodeOutOfDiskSpace, Message: "out of disk"}}},
			code: CodeOutOfDiskSpace, reason: ReasonOutOfDiskSpace},
		{name: "MongoDB ENOSPC text", err: mongo.CommandError{Code: 8, Message: "WiredTiger error (28) No space left on device"},
			code: codeENOSPC, reason: ReasonOutOfDiskSpace},
		{name: "wrapped and joined", err: fmt.Errorf("import: %w", errors.Join(errors.New("first"), mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 1, Message: ferretFull}}})),
			code: CodeSQLiteFull, reason: ReasonSQLiteFull},
		{name: "duplicate key", err: mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "E11000 duplicate key"}}}, notFull: true},
		{name: "other internal error", err: mongo.CommandError{Code: 1, Message: "[x.go:1 f] SQL logic error: too many SQL variables (1)"}, notFull: true},
		{name: "deadline", err: context.DeadlineExceeded, notFull: true},
		{name: "plain text is not a server's word", err: errors.New("database or disk is full"), notFull: true},
	}
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1")) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	s := &Store{db: client.Database("nairobi")}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := s.full(c.err)
			if IsStorageFull(c.err) == c.notFull {
				t.Errorf("IsStorageFull = %v", !c.notFull)
			}
			var full *StorageFullError
			if c.notFull {
				if got.Error() != c.err.Error() || errors.As(got, &full) {
					t.Errorf("full(%v) = %v, want it unchanged", c.err, got)
				}
				return
			}
			if !errors.As(got, &full) || !errors.Is(got, ErrStorageFull) {
				t.Fatalf("full(%v) = %#v, want a StorageFullError", c.err, got)
			}
			if full.Code != c.code || full.Reason() != c.reason || full.Database != "nairobi" {
				t.Errorf("code %d reason %s database %s, want %d %s nairobi", full.Code, full.Reason(), full.Database, c.code, c.reason)
			}
			msg := got.Error()
			if !strings.Contains(msg, `"nairobi"`) || !strings.Contains(msg, "disk") || strings.Contains(msg, ".go:") || strings.Contains(msg, "InternalError") {
				t.Errorf("message %q: want the database and the disk, never the server's stack", msg)
			}
			if cause := full.CauseText(); strings.Contains(cause, ".go:") || !strings.Contains(cause, c.causeHas) {
				t.Errorf("cause %q: want the server's words without its Go stack", cause)
			}
			if again := s.full(got); again.(*StorageFullError) != full {
				t.Error("a StorageFullError is not wrapped again")
			}
		})
	}
	n := s.StorageFullErrors()
	if n[ReasonSQLiteFull] != 4 || n[ReasonOutOfDiskSpace] != 3 || len(n) != len(StorageReasons) {
		t.Errorf("counted %v, want 4 sqlite_full and 3 out_of_disk_space", n)
	}
	if s.LastStorageFull().IsZero() {
		t.Error("no time of the last refused write")
	}
}

// TestStorageFullOnOneDiskOnly: school A's database on a full disk (a
// small tmpfs of its own server) refuses A's writes with a
// StorageFullError naming A, while school B, on another disk, writes on
// and counts nothing; A's reads answer meanwhile, and once space is freed
// A writes again with the same Store (no restart). Root only (mount).
func TestStorageFullOnOneDiskOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for school A's database (mount -t tmpfs)")
	}
	ctx := t.Context()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	srv, err := devmongo.Start(ctx, devmongo.Config{Dir: filepath.Join(dir, "mongo")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	a := New(client.Database("schoola"), Options{BcryptCost: 4})
	b := New(mongotest.Database(t), Options{BcryptCost: 4}) // the shared test server, on another disk
	for _, s := range []*Store{a, b} {
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		if _, _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: "S-0", FirstName: "First", SecondName: "Before"}); err != nil {
			t.Fatal(err)
		}
	}

	filler := filepath.Join(dir, "filler")
	fillUp(t, filler)
	var full error
	for i := 1; i <= 200 && full == nil; i++ { // the first commits may still fit in space SQLite holds
		_, full = a.CreateStudent(ctx, StudentInput{RegistrationNo: fmt.Sprintf("S-%d", i), FirstName: "First", SecondName: "Full"})
	}
	var sf *StorageFullError
	if !errors.As(full, &sf) || !errors.Is(full, ErrStorageFull) || sf.Database != "schoola" {
		t.Fatalf("A's write on a full disk: %v, want a StorageFullError of schoola", full)
	}
	if msg := full.Error(); strings.Contains(msg, ".go:") || !strings.Contains(msg, "disk") {
		t.Errorf("message %q", msg)
	}
	if n, err := a.CountStudents(ctx); err != nil || n < 1 {
		t.Errorf("A's reads on a full disk: %d, %v", n, err)
	}
	if _, err := b.CreateStudent(ctx, StudentInput{RegistrationNo: "S-1", FirstName: "First", SecondName: "Elsewhere"}); err != nil {
		t.Errorf("B's write, on another disk: %v", err)
	}
	if got := b.StorageFullErrors(); got[ReasonSQLiteFull] != 0 || got[ReasonOutOfDiskSpace] != 0 || !b.LastStorageFull().IsZero() {
		t.Errorf("B counts writes refused for lack of space: %v", got)
	}
	if got := a.StorageFullErrors(); got[ReasonSQLiteFull] < 1 {
		t.Errorf("A's refused writes: %v", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateStudent(ctx, StudentInput{RegistrationNo: "S-after", FirstName: "First", SecondName: "Freed"}); err != nil {
		t.Errorf("A's write after space was freed: %v", err)
	}
}

// fillUp writes zeros to path until the disk is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zeros := make([]byte, 64<<10)
	for {
		if _, err := f.Write(zeros); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}
