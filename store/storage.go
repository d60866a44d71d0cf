package store

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Storage errors: a write the database server refused because the disk
// under it is full. They are recognised where the store writes (s.full),
// so that what callers get names the database and "disk full" and never
// carries the server's own text (FerretDB puts its Go stack in it:
// "(InternalError) [msg_insert.go:168 …] database or disk is full (13)").
// Reads do not need space and keep working meanwhile; once space is
// freed the next write succeeds, without a restart.

// ErrStorageFull is matched by errors.Is for every write refused because
// the disk holding the database is full.
var ErrStorageFull = errors.New("the disk holding the database is full")

// Server codes of a full disk.
const (
	// CodeOutOfDiskSpace is MongoDB's OutOfDiskSpace (error_codes.yml),
	// answered when a file write gets ENOSPC or the free-space monitor
	// refuses a write.
	CodeOutOfDiskSpace = 14031
	// CodeSQLiteFull is SQLite's SQLITE_FULL, which FerretDB's SQLite
	// backend (campus dev) passes on as text in an InternalError.
	CodeSQLiteFull = 13
	// codeENOSPC is the errno a server names in "No space left on device".
	codeENOSPC = 28
)

// StorageFullError is a write refused because the disk holding Database
// is full. Its message is for people; Cause, the server's own error, is
// for debug logs only (it may hold the server's internal stack).
type StorageFullError struct {
	Database string
	Code     int // CodeOutOfDiskSpace, CodeSQLiteFull or 28 (ENOSPC)
	Cause    error
}

func (e *StorageFullError) Error() string {
	return fmt.Sprintf("database %q cannot save: the disk holding it is full", e.Database)
}

// Is makes errors.Is(err, ErrStorageFull) true.
func (e *StorageFullError) Is(target error) bool { return target == ErrStorageFull }

// Reason is the metric label of the error: the kind of server that said so.
func (e *StorageFullError) Reason() string {
	if e.Code == CodeSQLiteFull {
		return ReasonSQLiteFull
	}
	return ReasonOutOfDiskSpace
}

// Reasons of StorageFullError (metric label values).
const (
	ReasonSQLiteFull     = "sqlite_full"       // FerretDB on SQLite: SQLITE_FULL
	ReasonOutOfDiskSpace = "out_of_disk_space" // MongoDB: OutOfDiskSpace or ENOSPC
)

// StorageReasons are every Reason, so that counters can start at 0.
var StorageReasons = []string{ReasonSQLiteFull, ReasonOutOfDiskSpace}

// storageFullCode recognises a server error that says the disk is full.
func storageFullCode(err error) (int, bool) {
	var se mongo.ServerError
	if err == nil || !errors.As(err, &se) {
		return 0, false
	}
	switch {
	case se.HasErrorCode(CodeOutOfDiskSpace):
		return CodeOutOfDiskSpace, true
	case se.HasErrorMessage("database or disk is full"), se.HasErrorMessage("SQLITE_FULL"):
		return CodeSQLiteFull, true
	case se.HasErrorMessage("No space left on device"), se.HasErrorMessage("OutOfDiskSpace"):
		return codeENOSPC, true
	}
	return 0, false
}

// IsStorageFull reports whether err is a write refused for lack of space:
// a StorageFullError, or a server error saying so that no store method
// has worded yet.
func IsStorageFull(err error) bool {
	if errors.Is(err, ErrStorageFull) {
		return true
	}
	_, ok := storageFullCode(err)
	return ok
}

// storageStats counts the writes of one Store refused for lack of space.
type storageStats struct {
	byReason [2]atomic.Int64 // StorageReasons order
	last     atomic.Int64    // unix nanoseconds of the last one; 0: none
}

// full returns err as a *StorageFullError when the server said the disk
// is full (and counts it), else err unchanged. Every write of the store
// passes its error through it.
func (s *Store) full(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) {
		return err
	}
	code, ok := storageFullCode(err)
	if !ok {
		return err
	}
	e := &StorageFullError{Database: s.db.Name(), Code: code, Cause: err}
	for i, r := range StorageReasons {
		if r == e.Reason() {
			s.storage.byReason[i].Add(1)
		}
	}
	s.storage.last.Store(time.Now().UnixNano())
	return e
}

// StorageFullErrors is how many writes of this Store the server refused
// for lack of space so far, by Reason (every reason present, 0 included).
func (s *Store) StorageFullErrors() map[string]int64 {
	out := make(map[string]int64, len(StorageReasons))
	for i, r := range StorageReasons {
		out[r] = s.storage.byReason[i].Load()
	}
	return out
}

// LastStorageFull is when a write of this Store was last refused for lack
// of space (zero: never).
func (s *Store) LastStorageFull() time.Time {
	if n := s.storage.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// StripServerStack takes FerretDB's stack of Go source locations
// ("[msg_insert.go:168 handler.(*Handler).MsgInsert]") and its
// "(InternalError)" out of an error's text, for people and logs.
func StripServerStack(msg string) string {
	msg = strings.ReplaceAll(msg, "(InternalError) ", "")
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '[')
		if i < 0 {
			break
		}
		j := strings.IndexByte(msg[i:], ']')
		if j < 0 || !strings.Contains(msg[i:i+j], ".go:") {
			b.WriteString(msg[:i+1])
			msg = msg[i+1:]
			continue
		}
		b.WriteString(msg[:i])
		msg = strings.TrimLeft(msg[i+j+1:], " ")
	}
	b.WriteString(msg)
	return b.String()
}

// CauseText is the server's own words of a storage error, without
// FerretDB's Go stack: for an operator's log line.
func (e *StorageFullError) CauseText() string {
	if e.Cause == nil {
		return ""
	}
	return StripServerStack(e.Cause.Error())
}
