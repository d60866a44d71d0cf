package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/store"
)

// DefaultMongoURI is the database when nothing else says where it is.
const DefaultMongoURI = "mongodb://127.0.0.1:27017"

// DatabaseAddress says where the MongoDB server is, from everything an
// operator may have given: the one resolver of every command (create,
// backup, restore, migrate, purge, manage …).
type DatabaseAddress struct {
	URI     string // --mongodb-uri or $MONGODB_URI
	URIFile string // --mongodb-uri-file (a Docker secret); wins over URI
	// DataDir is the data folder of `campus dev`, whose dev.json records
	// the address of its embedded database ("": none is looked at).
	DataDir string
}

// Resolve returns the URI to connect to and where it came from (for
// messages; it never holds the URI itself), in this order: the URI file,
// the URI, the embedded database `campus dev` recorded in DataDir, the
// default.
func (a DatabaseAddress) Resolve() (uri, from string, err error) {
	switch {
	case a.URIFile != "":
		b, err := os.ReadFile(a.URIFile)
		if err != nil {
			return "", "", fmt.Errorf("read MongoDB URI file: %w", err)
		}
		uri := strings.TrimSpace(string(b))
		if uri == "" {
			return "", "", fmt.Errorf("MongoDB URI file %s is empty", a.URIFile)
		}
		return uri, "--mongodb-uri-file " + a.URIFile, nil
	case a.URI != "":
		return a.URI, "MONGODB_URI / --mongodb-uri", nil
	}
	if st, ok := ReadDevState(a.DataDir); ok && st.MongoURI != "" {
		abs, _ := filepath.Abs(a.DataDir)
		return st.MongoURI, "the embedded database `campus dev` recorded in " + filepath.Join(abs, DevStateFile), nil
	}
	return DefaultMongoURI, "the default (MONGODB_URI is not set)", nil
}

// Given reports whether the operator named a database (URI or file).
func (a DatabaseAddress) Given() bool { return a.URI != "" || a.URIFile != "" }

// DevState is what `campus dev` records in its data folder for commands
// run from other terminals. It holds no secret: the database address is
// recorded only for the embedded server, which has no password.
type DevState struct {
	PublicURL string `json:"public_url"`
	MongoURI  string `json:"mongodb_uri,omitempty"`
	// IdleTimeout and Memory are its --idle-timeout and --memory: what a
	// tenant without its own setting gets (`tenant list` shows them).
	IdleTimeout string `json:"idle_timeout,omitempty"`
	Memory      string `json:"memory,omitempty"`
	// Registry names the registry it serves (cmd/campus
	// registryOptions.identity): another command applies IdleTimeout
	// and Memory only to the tenants of that registry.
	Registry string `json:"registry,omitempty"`
}

// DevStateFile is DevState's file in the data folder.
const DevStateFile = "dev.json"

// WriteDevState records st in dataDir.
func WriteDevState(dataDir string, st DevState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, DevStateFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record dev settings in %s: %w", path, err)
	}
	return nil
}

// ReadDevState reads what `campus dev` recorded in dataDir, if anything.
func ReadDevState(dataDir string) (DevState, bool) {
	if dataDir == "" {
		return DevState{}, false
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return DevState{}, false
	}
	b, err := os.ReadFile(filepath.Join(abs, DevStateFile))
	if err != nil {
		return DevState{}, false
	}
	var st DevState
	if json.Unmarshal(b, &st) != nil {
		return DevState{}, false
	}
	return st, true
}

// RedactURI hides the password of a connection string for logs and
// messages.
func RedactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparseable MongoDB URI)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// probeTimeout bounds the quick reachability check of the database.
const probeTimeout = 2 * time.Second

// UnreachableError is a database that does not answer: From says where
// its address came from, DataDir the data folder looked at.
type UnreachableError struct {
	URI, From, DataDir, Why string
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the database at %s (%s; address from %s)", RedactURI(e.URI), e.Why, e.From)
}

// Probe dials the hosts of a mongodb:// URI, so that a database that is
// not running is reported at once (an *UnreachableError) rather than after
// the driver's server-selection timeout. Other URIs (mongodb+srv, Unix
// sockets) are left to the driver.
func Probe(ctx context.Context, uri, from, dataDir string) error {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		return nil
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if strings.Contains(strings.ToLower(rest), "%2f") || strings.HasPrefix(rest, "/") {
		return nil // a Unix socket: left to the driver
	}
	var lastErr error
	for _, h := range strings.Split(rest, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "27017")
		}
		d := net.Dialer{Timeout: probeTimeout}
		c, err := d.DialContext(ctx, "tcp", h)
		if err == nil {
			c.Close()
			return nil
		}
		lastErr = err
	}
	abs, _ := filepath.Abs(dataDir)
	why := "nothing answers there"
	var op *net.OpError
	if errors.As(lastErr, &op) && op.Timeout() {
		why = "no answer within " + probeTimeout.String()
	}
	return &UnreachableError{URI: uri, From: from, DataDir: abs, Why: why}
}

// connectTimeout bounds connecting to the database.
const connectTimeout = 15 * time.Second

// OpenStore connects to one database with a bounded wait.
func OpenStore(ctx context.Context, uri, database string) (*store.Store, error) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	st, err := store.Open(cctx, uri, database, store.Options{}) // pings the database
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB at %s (database %q): %w", RedactURI(uri), database, err)
	}
	return st, nil
}

// Connect returns a client of the server at uri; errors never hold the
// URI.
func Connect(ctx context.Context, uri string) (*mongo.Client, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB at %s: invalid URI", RedactURI(uri))
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := client.Ping(cctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("reach MongoDB at %s: %w", RedactURI(uri), err)
	}
	return client, nil
}
