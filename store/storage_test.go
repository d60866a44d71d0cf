package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
