package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newStore returns a migrated Store on a database of its own.
func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.MinCost
	}
	if opts.QueryTimeout == 0 {
		opts.QueryTimeout = 2 * time.Minute // a busy machine, -race: no deadline in the way
	}
	s := New(mongotest.Database(t), opts)
	if _, _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, reg, first, second string) Student {
	t.Helper()
	st, err := s.CreateStudent(t.Context(), StudentInput{RegistrationNo: reg, FirstName: first, SecondName: second})
	if err != nil {
		t.Fatalf("create %s: %v", reg, err)
	}
	return st
}

func count(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.CountStudents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := New(mongotest.Database(t), Options{})

	if err := s.CheckSchema(ctx); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("CheckSchema before Migrate = %v, want ErrNotMigrated", err)
	}
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 0 || to != SchemaVersion {
		t.Fatalf("first Migrate = %d, %d, %v; want 0, %d, nil", from, to, err, SchemaVersion)
	}
	from, to, err = s.Migrate(ctx)
	if err != nil || from != SchemaVersion || to != SchemaVersion {
		t.Fatalf("second Migrate = %d, %d, %v; want %d, %d, nil", from, to, err, SchemaVersion, SchemaVersion)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after Migrate: %v", err)
	}
	// The unique index exists: a raw duplicate insert fails.
	if _, err := s.col(colStudents).InsertMany(ctx, []any{
		d("registration_no", "X"), d("registration_no", "X"),
	}); err == nil {
		t.Fatal("duplicate registration_no accepted: unique index missing")
	}

	// A newer binary migrated this database: refuse, change nothing.
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$set", d("version", SchemaVersion+1))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Migrate(ctx); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Migrate on a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if err := s.CheckSchema(ctx); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("CheckSchema on a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if v, _ := s.schemaVersion(ctx); v != SchemaVersion+1 {
		t.Fatalf("version after refused Migrate = %d, want %d", v, SchemaVersion+1)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, name := range []string{"", "a/b", "a.b", "admin", "local", "with space"} {
		if s, err := Open(ctx, mongotest.URI(t), name, Options{}); err == nil {
			_ = s.Close(ctx)
			t.Errorf("Open with database %q succeeded", name)
		}
	}
	db := mongotest.Database(t) // dropped at the end
	s, err := Open(ctx, mongotest.URI(t), db.Name(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.DatabaseName() != db.Name() {
		t.Errorf("DatabaseName = %q, want %q", s.DatabaseName(), db.Name())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func TestOpenErrorHidesURI(t *testing.T) {
	t.Parallel()
	for _, uri := range []string{
		"mongodb://user:s3cret-pw@h:notaport/",  // does not parse
		"mongodb://user:s3cret-pw@127.0.0.1:1/", // nothing listens
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := Open(ctx, uri, "db", Options{})
		cancel()
		if err == nil {
			t.Fatalf("Open(%q) succeeded", uri)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error reveals the password: %q", err)
		}
	}
}

// Migrate on a current database touches no student (every app start
// migrates: it must not grow with the school), and still makes an index
// that has gone missing.
func TestMigrateCurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	mustCreate(t, s, "A-1", "Ann", "Lee")
	// A document no migration of a current database looks at: a full
	// pass would convert it (it has no folded keys).
	if _, err := s.col(colStudents).InsertOne(ctx, d("_id", int64(99))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.col(colStudents).FindOne(ctx, d("_id", int64(99))).Decode(&raw); err != nil || raw[fieldSearch] != nil {
		t.Fatalf("Migrate of a current database rewrote the students: %v, %v", raw, err)
	}
	if _, err := s.col(colStudents).DeleteOne(ctx, d("_id", int64(99))); err != nil {
		t.Fatal(err)
	}
	if err := s.col(colStudents).Indexes().DropOne(ctx, regNoKeyIndex); err != nil {
		t.Fatal(err)
	}
	if from, to, err := s.Migrate(ctx); err != nil || from != SchemaVersion || to != SchemaVersion {
		t.Fatalf("Migrate with an index missing = %d, %d, %v", from, to, err)
	}
	if ok, err := s.indexesComplete(ctx); !ok || err != nil {
		t.Fatalf("after Migrate: indexes complete = %v, %v", ok, err)
	}
}
