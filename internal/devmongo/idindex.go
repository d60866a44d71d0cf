package devmongo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

// FerretDB v1.24.2 (SQLite) hands SQLite one kind of filter: `_id`
// equality, as `WHERE _ferretdb_sjson->'$._id' = ?`. Its unique `_id_`
// index is on `_ferretdb_sjson->"_id"`, and SQLite uses an index on an
// expression only for that very expression: EXPLAIN QUERY PLAN says SCAN,
// so every find by `_id` reads the whole table (600 ms at 100,000 history
// entries on the busy 2-core machine). The id indexer adds, beside it, an
// index on the expression the finds use; SQLite then answers them with a
// SEARCH (docs/ARCHITECTURE.md, "History"). FerretDB does not know the
// index: it is dropped with its table, and a table gets it within
// idIndexInterval of its creation.

// idIndexInterval is how often the data folder is looked over for tables
// without the index (only files changed since the last look are opened).
const idIndexInterval = 3 * time.Second

const idIndexSuffix = "_campus_id_lookup"

type idIndexer struct {
	dir    string
	logger *slog.Logger
	seen   map[string]time.Time // file → when it was last looked at
	// gate is held for reading while a file is open: a dropDatabase
	// waits for it (relay.go).
	gate *sync.RWMutex
}

// run looks every idIndexInterval until ctx ends.
func (x *idIndexer) run(ctx context.Context) {
	t := time.NewTicker(idIndexInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			x.pass(ctx)
		}
	}
}

// pass indexes the tables of every database file changed since its last
// look.
func (x *idIndexer) pass(ctx context.Context) {
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		x.logger.Warn("id indexes: list the database files", "err", err)
		return
	}
	for _, f := range files {
		changed := modified(f)
		if wal := modified(f + "-wal"); wal.After(changed) {
			changed = wal
		}
		// A file changed up to a second before its last look (a table
		// created while it was looked at, a coarse clock) is looked at
		// again.
		if last, ok := x.seen[f]; ok && changed.Before(last.Add(-time.Second)) {
			continue
		}
		look := time.Now()
		if err := x.indexFile(ctx, f); err != nil {
			if ctx.Err() == nil {
				x.logger.Warn("id indexes: index a database file", "file", f, "err", err)
			}
			continue
		}
		x.seen[f] = look
	}
}

func modified(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// indexFile adds the `_id` look-up index to every collection's table of
// one database file that lacks it. A file dropped since it was listed is
// left alone: it is never opened (which would make an empty one).
func (x *idIndexer) indexFile(ctx context.Context, path string) error {
	x.gate.RLock()
	defer x.gate.RUnlock()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: url.Values{
		"mode":    {"rw"}, // never create the file
		"_pragma": {"busy_timeout(10000)"},
	}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	// A database FerretDB is creating has its file before its metadata
	// table: nothing to index yet (the file changes again when it is made).
	var made int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_ferretdb_collections'`).Scan(&made); err != nil {
		return fmt.Errorf("look for the metadata table: %w", err)
	}
	if made == 0 {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM "_ferretdb_collections" c
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || ?)`, idIndexSuffix)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index table %s: %w", t, err)
		}
	}
	return nil
}
