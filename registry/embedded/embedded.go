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

// schemaVersion is stored in PRAGMA user_version: the number of entries
// of migrations applied.
const schemaVersion = 6

// DefaultTombstoneKeep is how many versions deletions stay readable as
// tombstones: a handle whose cached snapshot is older than that reads the
// whole registry again instead of only what changed.
const DefaultTombstoneKeep = 1024

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

	keep uint64 // tombstone horizon in versions (DefaultTombstoneKeep; tests lower it)
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
		keep:    DefaultTombstoneKeep,
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

// walCheckpointPages is the WAL size (pages of 4 KiB) past which a commit
// checkpoints it (SQLite's default: 1000).
const walCheckpointPages = 64

// dsn builds the driver's connection string: busy_timeout first, so that
// switching a new file to WAL waits for a concurrent opener.
func dsn(path string, busy time.Duration, txlock string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	// A small WAL, checkpointed and then rewritten from its start: a
	// commit then overwrites space the WAL already holds instead of
	// growing it, so instances can still be registered on a full disk
	// (campus dev's data folder holds its database too; issue 23).
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointPages))
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

// stamp is the version the current write transaction will commit: write
// bumps meta.version exactly once, at the end of every transaction that
// changes something, so while the changes are made it is version + 1.
//
// The statements in store.go stamp the rows they change with it; triggers
// stamp whatever a statement left unstamped and record deletions. Being in
// the file, the triggers cover every writer: a process still running the
// previous schema's code, or a statement added later that forgets. (When
// the statement stamped, the trigger only evaluates its WHEN: writes cost
// about 25% more with the triggers than without, mostly SQLite's statement
// journal; see the package documentation.)
const stamp = `(SELECT version + 1 FROM meta WHERE id = 1)`

// migrations[i] takes the schema from version i to i+1.
var migrations = [][]string{
	{ // 1: the tables
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
	},
	{ // 2: row versions and tombstones, so that a snapshot can be read as
		// the previous one plus what changed since (see Snapshot)
		`ALTER TABLE meta ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0`, // tombstones up to here may be gone
		`ALTER TABLE tenants ADD COLUMN ver INTEGER NOT NULL DEFAULT 0`, // version of the last change, hosts included
		`ALTER TABLE instances ADD COLUMN ver INTEGER NOT NULL DEFAULT 0`,
		`CREATE INDEX tenants_ver ON tenants (ver)`,
		`CREATE INDEX instances_ver ON instances (ver)`,
		`CREATE TABLE tombstones (
			kind TEXT NOT NULL, -- 'tenant' or 'instance'
			key  TEXT NOT NULL, -- its name or ID
			ver  INTEGER NOT NULL,
			PRIMARY KEY (kind, key)
		) STRICT`,
		`CREATE INDEX tombstones_ver ON tombstones (ver)`,
		`CREATE TRIGGER tenants_inserted AFTER INSERT ON tenants WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.name;
		END`,
		`CREATE TRIGGER tenants_updated AFTER UPDATE OF name, display_name, primary_host, db_name, state, created_at ON tenants
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.name;
		END`,
		`CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants BEGIN
			INSERT OR REPLACE INTO tombstones (kind, key, ver) VALUES ('tenant', OLD.name, ` + stamp + `);
		END`,
		`CREATE TRIGGER tenants_renamed AFTER UPDATE OF name ON tenants WHEN OLD.name != NEW.name BEGIN
			INSERT OR REPLACE INTO tombstones (kind, key, ver) VALUES ('tenant', OLD.name, ` + stamp + `);
		END`,
		`CREATE TRIGGER hosts_inserted AFTER INSERT ON hosts
		WHEN (SELECT ver FROM tenants WHERE name = NEW.tenant) IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.tenant;
		END`,
		`CREATE TRIGGER hosts_updated AFTER UPDATE ON hosts BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name IN (OLD.tenant, NEW.tenant);
		END`,
		`CREATE TRIGGER hosts_deleted AFTER DELETE ON hosts
		WHEN (SELECT ver FROM tenants WHERE name = OLD.tenant) IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = OLD.tenant;
		END`,
		`CREATE TRIGGER instances_inserted AFTER INSERT ON instances WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE instances SET ver = ` + stamp + ` WHERE id = NEW.id;
		END`,
		`CREATE TRIGGER instances_updated AFTER UPDATE OF id, tenant, addr, healthy ON instances
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE instances SET ver = ` + stamp + ` WHERE id = NEW.id;
		END`,
		`CREATE TRIGGER instances_deleted AFTER DELETE ON instances BEGIN
			INSERT OR REPLACE INTO tombstones (kind, key, ver) VALUES ('instance', OLD.id, ` + stamp + `);
		END`,
		`CREATE TRIGGER instances_renamed AFTER UPDATE OF id ON instances WHEN OLD.id != NEW.id BEGIN
			INSERT OR REPLACE INTO tombstones (kind, key, ver) VALUES ('instance', OLD.id, ` + stamp + `);
		END`,
	},
	{ // 3: tenant identity and soft delete. Tenants from before get an ID
		// here, once; the index makes IDs unique for good measure.
		`ALTER TABLE tenants ADD COLUMN id TEXT NOT NULL DEFAULT ''`,
		`UPDATE tenants SET id = lower(hex(randomblob(16))), ver = ` + stamp + ` WHERE id = ''`,
		`UPDATE meta SET version = version + 1 WHERE id = 1 AND EXISTS (SELECT 1 FROM tenants WHERE ver = version + 1)`,
		`CREATE UNIQUE INDEX tenants_id ON tenants (id)`,
		`ALTER TABLE tenants ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0`,  // Unix nanoseconds; 0 when not deleted
		`ALTER TABLE tenants ADD COLUMN purge_after INTEGER NOT NULL DEFAULT 0`, // likewise
		`DROP TRIGGER tenants_updated`,
		`CREATE TRIGGER tenants_updated AFTER UPDATE OF name, display_name, primary_host, db_name, state, created_at, id, deleted_at, purge_after ON tenants
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.name;
		END`,
	},
	{ // 4: scale to zero (issue 12): the idle-timeout override of a tenant
		// ('' = the supervisor's default) and the wake requests, which do
		// not move the snapshot version (see scale.go)
		`ALTER TABLE tenants ADD COLUMN idle_timeout TEXT NOT NULL DEFAULT ''`,
		`DROP TRIGGER tenants_updated`,
		`CREATE TRIGGER tenants_updated AFTER UPDATE OF name, display_name, primary_host, db_name, state, created_at, id, deleted_at, purge_after, idle_timeout ON tenants
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.name;
		END`,
		`CREATE TABLE wakes (
			tenant TEXT PRIMARY KEY,
			seq    INTEGER NOT NULL,
			at     INTEGER NOT NULL -- Unix nanoseconds
		) STRICT`,
		`CREATE INDEX wakes_seq ON wakes (seq)`,
	},
	{ // 5: memory budget (issue 20): the memory-limit override of a tenant
		// ('' = the supervisor's default) and the memory kills an
		// instance's supervisor has seen
		`ALTER TABLE tenants ADD COLUMN memory TEXT NOT NULL DEFAULT ''`,
		`DROP TRIGGER tenants_updated`,
		`CREATE TRIGGER tenants_updated AFTER UPDATE OF name, display_name, primary_host, db_name, state, created_at, id, deleted_at, purge_after, idle_timeout, memory ON tenants
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE tenants SET ver = ` + stamp + ` WHERE name = NEW.name;
		END`,
		`ALTER TABLE instances ADD COLUMN memory_kills INTEGER NOT NULL DEFAULT 0`,
		`DROP TRIGGER instances_updated`,
		`CREATE TRIGGER instances_updated AFTER UPDATE OF id, tenant, addr, healthy, memory_kills ON instances
		WHEN NEW.ver IS NOT ` + stamp + ` BEGIN
			UPDATE instances SET ver = ` + stamp + ` WHERE id = NEW.id;
		END`,
	},
	{ // 6: operator tokens and the audit trail (issue 26; see operators.go),
		// outside the snapshot: no version, no triggers
		`CREATE TABLE operator_tokens (
			id         TEXT PRIMARY KEY,
			name       TEXT NOT NULL,
			read_only  INTEGER NOT NULL,
			hash       TEXT NOT NULL,
			created_at INTEGER NOT NULL, -- Unix nanoseconds
			last_used  INTEGER NOT NULL DEFAULT 0,
			revoked_at INTEGER NOT NULL DEFAULT 0
		) STRICT`,
		`CREATE UNIQUE INDEX operator_tokens_live_name ON operator_tokens (name) WHERE revoked_at = 0`,
		`CREATE TABLE audit (
			id       TEXT PRIMARY KEY, -- registry.AuditID: sorts by time
			at       INTEGER NOT NULL,
			token_id TEXT NOT NULL,
			operator TEXT NOT NULL,
			action   TEXT NOT NULL,
			target   TEXT NOT NULL,
			outcome  TEXT NOT NULL,
			status   INTEGER NOT NULL,
			detail   TEXT NOT NULL,
			idempotency_key TEXT NOT NULL,
			school_id       TEXT NOT NULL
		) STRICT`,
		`CREATE INDEX audit_target ON audit (target, id)`,
		`CREATE INDEX audit_idempotency ON audit (token_id, idempotency_key) WHERE idempotency_key != ''`,
	},
}

// migrate creates or upgrades the schema, in one write transaction so that
// processes opening a file at once do not trip over each other.
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
	for i := v; i < schemaVersion; i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate to schema %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("migrate: %w", err)
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
