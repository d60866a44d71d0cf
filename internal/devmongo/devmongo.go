// Package devmongo runs an embedded MongoDB-compatible server (FerretDB with
// its SQLite backend) inside the current process, for `campus dev` and for
// tests. It is the only package that imports FerretDB: keep it out of
// anything that does not need a local database server, since linking
// FerretDB makes binaries large and cold builds slow.
package devmongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultListen is used when Config.Listen is empty. Port 0 lets the
// kernel pick a free port; Server.URI reports the real one.
const DefaultListen = "127.0.0.1:0"

// startTimeout bounds Start when ctx has no deadline of its own.
const startTimeout = 30 * time.Second

// Config configures Start.
type Config struct {
	// Dir holds the SQLite files, one per database. It is created if
	// missing. Required.
	Dir string
	// Listen is the TCP address to listen on, e.g. "127.0.0.1:27017".
	// "127.0.0.1:0" picks a free port. Default DefaultListen.
	Listen string
	// Logger receives this package's messages and FerretDB's own at WARN
	// and above (FerretDB is very chatty at INFO). Nil discards both.
	Logger *slog.Logger
	// Sync is SQLite's synchronous setting for every database file:
	// SyncNormal (the default) or SyncFull. See SyncNormal.
	Sync Sync
}

// Sync is SQLite's PRAGMA synchronous, in WAL mode (which FerretDB
// v1.24.2 always sets).
type Sync int

const (
	// SyncNormal does not fsync at each commit, only at checkpoints: a
	// commit is durable against a crash of the process, but a power loss
	// or OS crash can lose the last commits (never corrupt the files).
	// It is what an embedded development server needs, and it makes each
	// commit several times cheaper (docs/BENCHMARKS.md, "Big schools").
	SyncNormal Sync = iota
	// SyncFull fsyncs the WAL at every commit (SQLite's and FerretDB's
	// default): a committed write survives a power loss.
	SyncFull
)

// sqliteURL is the FerretDB SQLite URL for dir. FerretDB adds its own
// defaults (busy_timeout, journal_mode(wal), auto_vacuum(none)) to the
// pragmas it is given; synchronous is passed through to every
// connection by the SQLite driver.
func sqliteURL(dir string, sync Sync) string {
	mode := "normal"
	if sync == SyncFull {
		mode = "full"
	}
	// FerretDB wants a file: URI naming an existing directory, ending in "/".
	// Building it with url.URL escapes spaces and other odd characters.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/",
		RawQuery: url.Values{"_pragma": {"synchronous(" + mode + ")"}}.Encode()}
	return u.String()
}

// Server is a running embedded server.
type Server struct {
	uri    string
	addr   string
	logger *slog.Logger

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	relay   *relay
	sockDir string // FerretDB's Unix socket's private folder
}

// Start starts the server and returns once it answers a ping. ctx bounds
// start-up only; the server runs until Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devmongo: Config.Dir is required")
	}
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("devmongo: data dir %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devmongo: create data dir: %w", err)
	}

	// The relay's listener is bound first, so that a port in use is an
	// error here, before FerretDB opens anything. (ferretdb.New opens the
	// SQLite backend before it binds its own listener, and when that bind
	// fails it returns without closing the backend, whose leak check then
	// panics the process at the next garbage collection.)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("devmongo: listen on %s: %w", listen, err)
	}
	sockDir, err := os.MkdirTemp("", "devmongo-")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devmongo: make the socket folder: %w", err)
	}
	sock := filepath.Join(sockDir, "ferretdb.sock")

	fdbLogger := slog.New(minLevel{min: slog.LevelWarn, h: logger.Handler()})
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Logger:    fdbLogger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(dir, cfg.Sync),
	})
	if err != nil {
		ln.Close()
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("devmongo: start FerretDB (data %s): %w", dir, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	gate := new(sync.RWMutex)
	s := &Server{
		addr:    ln.Addr().String(),
		logger:  logger,
		cancel:  cancel,
		done:    make(chan struct{}),
		relay:   &relay{ln: ln, upstream: sock, gate: gate, logger: logger, conns: map[net.Conn]struct{}{}},
		sockDir: sockDir,
	}
	s.uri = (&url.URL{Scheme: "mongodb", Host: s.addr, Path: "/"}).String()
	go func() {
		defer close(s.done)
		if err := f.Run(runCtx); err != nil {
			logger.Error("embedded MongoDB stopped", "err", err)
		}
	}()
	go s.relay.serve()

	if err := s.waitReady(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	// The `_id` look-up indexes (idindex.go): once now, for the files
	// there are, then every idIndexInterval while the server runs.
	ix := &idIndexer{dir: dir, logger: logger, seen: map[string]time.Time{}, gate: gate}
	ix.pass(ctx)
	go ix.run(runCtx)
	logger.Info("embedded MongoDB ready", "addr", s.addr, "data", dir)
	return s, nil
}

// waitReady pings the server with the driver until it answers.
func (s *Server) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	client, err := mongo.Connect(options.Client().ApplyURI(s.uri).SetServerSelectionTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("devmongo: connect to %s: %w", s.addr, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()
	for {
		err = client.Ping(ctx, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devmongo: waiting for %s to answer: %w", s.addr, errors.Join(ctx.Err(), err))
		case <-s.done:
			return fmt.Errorf("devmongo: server on %s stopped during start-up: %w", s.addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URI is the connection string, e.g. "mongodb://127.0.0.1:27017/".
func (s *Server) URI() string { return s.uri }

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the server and waits until its listener, connections and
// SQLite files are closed. Connected clients are given up to about three
// seconds to finish. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.relay.ln.Close() // no new clients
		s.cancel()
		<-s.done
		s.relay.close()
		os.RemoveAll(s.sockDir)
		s.logger.Info("embedded MongoDB stopped", "addr", s.addr)
	})
	return nil
}

// minLevel is a slog.Handler that drops records below min, and FerretDB's
// dumps of error responses ("Response header: …", "Response message: …"),
// which it logs at WARN for every failed command (an unsupported
// endSessions at each client disconnect, every duplicate-key error of
// findAndModify, …): the client receives those errors anyway. It drops
// "Failed to set deadline: … use of closed network connection" too, one
// WARN per client that hung up first.
//
// FerretDB adds attributes (logger.With) for every statement it runs, and
// slog's text and JSON handlers format them at once, in WithAttrs. Almost
// every record is then dropped, so minLevel only remembers the attributes
// and groups, and hands them to the next handler when a record is kept.
type minLevel struct {
	min  slog.Level
	h    slog.Handler
	with []withOp // applied in order to h, only when a record is handled
}

// withOp is one WithAttrs (group empty) or WithGroup call not yet applied.
type withOp struct {
	attrs []slog.Attr
	group string
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && (strings.HasPrefix(r.Message, "Response ") || strings.HasPrefix(r.Message, "Failed to set deadline")) {
		return nil
	}
	h := m.h
	for _, op := range m.with {
		if op.group != "" {
			h = h.WithGroup(op.group)
		} else {
			h = h.WithAttrs(op.attrs)
		}
	}
	return h.Handle(ctx, r)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return m
	}
	return m.push(withOp{attrs: slices.Clone(as)})
}

func (m minLevel) WithGroup(name string) slog.Handler {
	if name == "" {
		return m
	}
	return m.push(withOp{group: name})
}

// push returns a copy of m with op added; m's own list is never shared
// for appending, since loggers derived from one parent live side by side.
func (m minLevel) push(op withOp) minLevel {
	with := make([]withOp, len(m.with), len(m.with)+1)
	copy(with, m.with)
	m.with = append(with, op)
	return m
}
