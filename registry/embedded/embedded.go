package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/campus-saas/campus/registry"
)

// FileName is the name of the database file inside the data directory.
const FileName = "registry.db"

// Defaults of the options.
const (
	DefaultPollInterval = 20 * time.Millisecond
	DefaultBusyTimeout  = 5 * time.Second
)

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 1

var _ registry.Registry = (*Registry)(nil)

var errClosed = errors.New("embedded registry: closed")

// Registry is a registry.Registry stored in a SQLite file. It is safe for
// concurrent use, and several Registries (in one process or many) may
// share the same directory.
type Registry struct {
	path string
	wdb  *sql.DB // one connection; every transaction is BEGIN IMMEDIATE
	rdb  *sql.DB // readers; BEGIN (deferred), read-only
	log  *slog.Logger
	poll time.Duration

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	pollerWG  sync.WaitGroup

	mu       sync.Mutex
	seen     uint64        // highest version this handle has seen
	changed  chan struct{} // closed (and replaced) when seen grows
	watchers int           // Watch calls in progress
	polling  bool          // the poller goroutine runs
	idleAt   time.Time     // when watchers last dropped to 0
	cache    *registry.Snapshot
}

// Option configures Open.
type Option func(*options)

type options struct {
	poll   time.Duration
	busy   time.Duration
	logger *slog.Logger
}

// WithPollInterval sets how often a watching Registry checks for writes by
// other processes (default 20ms).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.poll = d
		}
	}
}

// WithBusyTimeout sets how long a write waits for another process's write
// to finish before failing with registry.ErrConflict (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busy = d
		}
	}
}

// WithLogger sets the logger for background errors (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Open opens (creating if needed) the registry in dir/registry.db. The
// directory is created with mode 0700 if missing, the file with 0600.
func Open(dir string, opts ...Option) (*Registry, error) {
	o := options{poll: DefaultPollInterval, busy: DefaultBusyTimeout, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("registry directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create registry directory: %w", err)
	}
	path := filepath.Join(abs, FileName)
	// Create the file ourselves so that it (and the -wal and -shm files
	// SQLite derives from it) is private to the user.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create registry database: %w", err)
	}
	f.Close()

	wdb, err := sql.Open("sqlite", dsn(path, o.busy, "immediate"))
	if err != nil {
		return nil, fmt.Errorf("open registry database %s: %w", path, err)
	}
	// One writer connection: writers in this process queue in Go instead
	// of sleeping in SQLite's busy handler.
	wdb.SetMaxOpenConns(1)
	rdb, err := sql.Open("sqlite", dsn(path, o.busy, ""))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open registry database %s: %w", path, err)
	}
	rdb.SetMaxIdleConns(4)

	r := &Registry{
		path:    path,
		wdb:     wdb,
		rdb:     rdb,
		log:     o.logger.With("registry", path),
		poll:    o.poll,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.busy+10*time.Second)
	defer cancel()
	if err := r.migrate(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("open registry database %s: %w", path, err)
	}
	return r, nil
}

// dsn builds the driver's connection string: busy_timeout first, so that
// switching a new file to WAL waits for a concurrent opener.
func dsn(path string, busy time.Duration, txlock string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Path returns the database file's path.
func (r *Registry) Path() string { return r.path }

// Close stops the background poller and closes the database. Watch calls
// in progress return an error. Close is idempotent.
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.mu.Lock() // Watch starts the poller under mu after checking done
		close(r.done)
		r.mu.Unlock()
		r.pollerWG.Wait()
		err = errors.Join(r.rdb.Close(), r.wdb.Close())
	})
	return err
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL
	) STRICT`,
	`INSERT OR IGNORE INTO meta (id, version) VALUES (1, 1)`,
	`CREATE TABLE IF NOT EXISTS tenants (
		name         TEXT PRIMARY KEY,
		display_name TEXT NOT NULL,
		primary_host TEXT NOT NULL,
		db_name      TEXT NOT NULL,
		state        TEXT NOT NULL,
		created_at   INTEGER NOT NULL -- Unix nanoseconds
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS hosts (
		host   TEXT PRIMARY KEY,
		tenant TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
		pos    INTEGER NOT NULL
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS hosts_tenant ON hosts (tenant, pos)`,
	`CREATE TABLE IF NOT EXISTS instances (
		id      TEXT PRIMARY KEY,
		tenant  TEXT NOT NULL,
		addr    TEXT NOT NULL,
		healthy INTEGER NOT NULL
	) STRICT`,
	`CREATE INDEX IF NOT EXISTS instances_tenant ON instances (tenant, id)`,
	fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion),
}

// migrate creates the schema, in one write transaction so that processes
// opening a new file at once do not trip over each other.
func (r *Registry) migrate(ctx context.Context) error {
	tx, err := r.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this campus understands (%d)", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isBusy(err error) bool {
	c := sqliteCode(err) & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
