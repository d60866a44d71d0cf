package devmongo

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// TestIDLookupsUseAnIndex checks that a find by `_id` is answered by an
// index SEARCH, not a SCAN of the table, for a collection created while
// the server runs (the indexer's pass) and found at start-up.
func TestIDLookupsUseAnIndex(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, s.URI()).Database("school").Collection("history")
	if _, err := c.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "_id", Value: "b"}}}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "school.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRowContext(ctx, `SELECT table_name FROM "_ferretdb_collections" WHERE name = 'history'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	// The query FerretDB sends for a find by _id (its sqlite backend,
	// collection.go), explained.
	plan := func() string {
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"a"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	if strings.Contains(plan(), "USING INDEX") {
		t.Fatalf("a find by _id is %q before the indexer ran: the test cannot tell", plan())
	}
	limit := 4*idIndexInterval + 30*time.Second
	deadline := time.Now().Add(limit)
	for {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", table+idIndexSuffix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no index %s after %s", table+idIndexSuffix, limit)
		}
		time.Sleep(100 * time.Millisecond) // polling, with a deadline
	}
	db.SetMaxIdleConns(0) // a new connection: the new schema
	if p := plan(); !strings.Contains(p, "USING INDEX "+table+idIndexSuffix) {
		t.Fatalf("a find by _id is %q with the index there", p)
	}
	var got bson.M
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&got); err != nil || got["_id"] != "b" {
		t.Fatalf("find by _id with the index: %v %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartRestartKeepsData(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	s, err := Start(ctx, Config{Dir: dir, Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("URI %q / Addr %q do not name the real port", s.URI(), s.Addr())
	}
	c := connect(t, s.URI())
	if _, err := c.Database("d").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Close", s.Addr())
	}
	if strings.Contains(logs.String(), "level=INFO msg=\"Listening") {
		t.Errorf("FerretDB INFO logs leaked into the logger:\n%s", logs.String())
	}

	s2, err := Start(ctx, Config{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	var got struct{ V string }
	if err := connect(t, s2.URI()).Database("d").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil {
		t.Fatalf("document written before restart: %v", err)
	}
	if got.V != "kept" {
		t.Fatalf("got %q, want %q", got.V, "kept")
	}

	// A second server on the same address fails cleanly.
	if s3, err := Start(ctx, Config{Dir: t.TempDir(), Listen: s2.Addr()}); err == nil {
		_ = s3.Close()
		t.Fatalf("second server on %s started", s2.Addr())
	}
}

func TestStartNeedsDir(t *testing.T) {
	if s, err := Start(t.Context(), Config{}); err == nil {
		_ = s.Close()
		t.Fatal("Start without Dir succeeded")
	}
}

func TestFerretDBLogFilter(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := slog.New(minLevel{min: slog.LevelWarn, h: base.Handler()}).With("name", "sqlite")
	l.Info("Listening on TCP")
	l.Warn("Response message: {errmsg: no such command: 'endSessions'}")
	l.Warn("disk almost full")
	l.Error("Response header: closing connection")
	got := buf.String()
	for _, tt := range []struct {
		msg  string
		kept bool
	}{
		{"Listening on TCP", false},
		{"endSessions", false},
		{"disk almost full", true},
		{"closing connection", true},
	} {
		if strings.Contains(got, tt.msg) != tt.kept {
			t.Errorf("%q kept = %v, want %v; log:\n%s", tt.msg, !tt.kept, tt.kept, got)
		}
	}
	if !strings.Contains(got, "name=sqlite") {
		t.Errorf("attributes lost: %s", got)
	}
}

func TestSQLiteURL(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		sync Sync
		want string
	}{
		{"/data/mongo", SyncNormal, "file:///data/mongo/?_pragma=synchronous%28normal%29"},
		{"/data/mongo", SyncFull, "file:///data/mongo/?_pragma=synchronous%28full%29"},
		{"/a dir/x", SyncNormal, "file:///a%20dir/x/?_pragma=synchronous%28normal%29"},
	} {
		if got := sqliteURL(tc.dir, tc.sync); got != tc.want {
			t.Errorf("sqliteURL(%q, %d) = %q, want %q", tc.dir, tc.sync, got, tc.want)
		}
	}
}

// Both synchronous settings start and keep data across a restart.
func TestStartWithSyncFull(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for i, sync := range []Sync{SyncFull, SyncNormal} {
		s, err := Start(ctx, Config{Dir: dir, Sync: sync})
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, s.URI())
		col := c.Database("d").Collection("c")
		if _, err := col.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
		n, err := col.CountDocuments(ctx, bson.D{})
		if err != nil || n != int64(i+1) {
			t.Fatalf("sync %d: %d documents, %v", sync, n, err)
		}
		_ = c.Disconnect(ctx)
		_ = s.Close()
	}
}

// TestFerretDBLogFilterKeepsAttributesInOrder: attributes and groups that
// minLevel holds back reach the record in the order they were added, and
// loggers derived from one parent do not see each other's attributes.
func TestFerretDBLogFilterKeepsAttributesInOrder(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, nil))
	parent := slog.New(minLevel{min: slog.LevelWarn, h: base.Handler()}).With("conn", 1)
	a := parent.WithGroup("g").With("stmt", "a")
	b := parent.With("stmt", "b")
	a.Warn("first")
	b.Warn("second")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "msg=first conn=1 g.stmt=a") {
		t.Errorf("first line = %q, want conn=1 then g.stmt=a", lines[0])
	}
	if !strings.Contains(lines[1], "msg=second conn=1 stmt=b") || strings.Contains(lines[1], "g.") {
		t.Errorf("second line = %q, want conn=1 stmt=b and no group", lines[1])
	}
}
