// Package mongotest gives tests a fresh MongoDB database each.
//
// All tests of one test binary share one server and one client: the server
// named by MONGODB_URI when that is set, otherwise an embedded FerretDB
// (internal/devmongo) started on first use, with its data in a temporary
// directory. Every call to Database returns a new, uniquely named database
// ("t_" + random hex, safe for concurrent test binaries on one real server)
// that is dropped when the test ends.
//
// A package that uses mongotest should stop the shared server when its
// tests end:
//
//	func TestMain(m *testing.M) { mongotest.Main(m) }
//
// Without it the tests still work, but the embedded server's temporary
// directory is left behind.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/devmongo"
)

// EnvURI names the environment variable that selects an external server.
const EnvURI = "MONGODB_URI"

const opTimeout = 30 * time.Second

var shared struct {
	once   sync.Once
	err    error
	uri    string
	client *mongo.Client
	server *devmongo.Server // nil when MONGODB_URI is used
	dir    string
}

func start() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	shared.uri = os.Getenv(EnvURI)
	if shared.uri == "" {
		dir, err := os.MkdirTemp("", "mongotest-")
		if err != nil {
			shared.err = fmt.Errorf("mongotest: temp dir: %w", err)
			return
		}
		shared.dir = dir
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv, err := devmongo.Start(ctx, devmongo.Config{Dir: dir, Listen: "127.0.0.1:0", Logger: logger})
		if err != nil {
			shared.err = fmt.Errorf("mongotest: start embedded server: %w", err)
			return
		}
		shared.server = srv
		shared.uri = srv.URI()
	}

	client, err := mongo.Connect(options.Client().ApplyURI(shared.uri))
	if err == nil {
		err = client.Ping(ctx, nil)
	}
	if err != nil {
		// The URI may hold a password: do not print it.
		shared.err = fmt.Errorf("mongotest: connect to the test server: %w", err)
		return
	}
	shared.client = client
}

func setup(t testing.TB) {
	t.Helper()
	shared.once.Do(start)
	if shared.err != nil {
		t.Fatal(shared.err)
	}
}

// URI returns the shared server's connection string, for tests that start
// child processes. It may contain credentials; do not log it.
func URI(t testing.TB) string {
	setup(t)
	return shared.uri
}

// Client returns the client shared by the whole test binary. Do not
// disconnect it.
func Client(t testing.TB) *mongo.Client {
	setup(t)
	return shared.client
}

// Database returns a new, empty database with a unique name, dropped when
// the test ends.
func Database(t testing.TB) *mongo.Database {
	t.Helper()
	db := Client(t).Database(NewName(t))
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("mongotest: drop database %s: %v", db.Name(), err)
		}
	})
	return db
}

// NewName returns a fresh database name ("t_" and 16 hex digits) without
// creating or dropping anything; for tests that hand a name to a child
// process. Drop it yourself.
func NewName(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t_" + hex.EncodeToString(b[:])
}

// Main runs the tests, stops the shared server and exits with the tests'
// status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Stop disconnects the shared client, stops the embedded server and removes
// its data. Main calls it; call it yourself only from a custom TestMain,
// after m.Run.
func Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var errs []error
	if shared.client != nil {
		if err := shared.client.Disconnect(ctx); err != nil {
			errs = append(errs, fmt.Errorf("mongotest: disconnect: %w", err))
		}
		shared.client = nil
	}
	if shared.server != nil {
		if err := shared.server.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mongotest: stop embedded server: %w", err))
		}
		shared.server = nil
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			errs = append(errs, fmt.Errorf("mongotest: remove %s: %w", shared.dir, err))
		}
		shared.dir = ""
	}
	return errors.Join(errs...)
}
