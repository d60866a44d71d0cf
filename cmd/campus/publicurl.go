package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/campus-saas/campus/registry/embedded"
)

// Tenant URLs people are told to open. Every tenant is served at its own
// host names, so what the proxy's address adds is a scheme and a port: the
// public URL (--public-url, $CAMPUS_PUBLIC_URL) gives them, and tenantURL
// is the one function that builds a tenant's link from it. `campus dev`
// records the public URL it serves (and the address of its embedded
// database) in the data folder, so commands in a second terminal print and
// use the same.

// publicURL is the scheme and port the proxy is reached at.
type publicURL struct {
	scheme string // "http" or "https"
	port   string // "" for the scheme's default
}

// defaultPublicURL is used when nothing says otherwise: plain HTTP on port
// 80, what a proxy at :80 behind nothing serves.
var defaultPublicURL = publicURL{scheme: "http"}

// parsePublicURL accepts "http://host:port", "https://host" and the like;
// only the scheme and port are kept (each tenant has its own host).
func parsePublicURL(s string) (publicURL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" && !strings.Contains(s, "://") {
		return publicURL{}, fmt.Errorf("public URL %q: want http://HOST[:PORT] or https://HOST[:PORT]", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return publicURL{}, fmt.Errorf("public URL %q: only a scheme, host and port are allowed (tenants are served at /)", s)
	}
	p := publicURL{scheme: u.Scheme, port: u.Port()}
	if (p.scheme == "http" && p.port == "80") || (p.scheme == "https" && p.port == "443") {
		p.port = ""
	}
	return p, nil
}

// publicURLFromListen is what a proxy listening on addr serves, over
// plain HTTP.
func publicURLFromListen(addr string) publicURL {
	p := publicURL{scheme: "http"}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "80" {
		p.port = port
	}
	return p
}

// String is the public URL with a placeholder host, for messages and the
// data folder.
func (p publicURL) String() string { return p.tenantURL("HOST", "") }

// tenantURL is the address of path at host: the one place tenant links
// are made.
func (p publicURL) tenantURL(host, path string) string {
	if p.port != "" {
		host = net.JoinHostPort(host, p.port)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return p.scheme + "://" + host + path
}

// publicURLOptions is the --public-url flag of commands that print links.
type publicURLOptions struct{ raw string }

func (o *publicURLOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.raw, "public-url", "", "scheme and port people reach the proxy at, as a URL (e.g. https://school.example or http://localhost:8000); "+
		"each tenant's links use its own host with them (default: what `campus dev` recorded in the data folder, else http on port 80)")
}

// resolve picks the flag, then what `campus dev` recorded in dataDir,
// then the default. It never creates anything.
func (o *publicURLOptions) resolve(dataDir string) (publicURL, error) {
	if o.raw != "" {
		p, err := parsePublicURL(o.raw)
		if err != nil {
			return publicURL{}, usageErr("--public-url: %v", err)
		}
		return p, nil
	}
	if st, ok := readDevState(dataDir); ok && st.PublicURL != "" {
		if p, err := parsePublicURL(st.PublicURL); err == nil {
			return p, nil
		}
	}
	return defaultPublicURL, nil
}

// devState is what `campus dev` records in its data folder for commands
// run from other terminals. It holds no secret: the database address is
// recorded only for the embedded server, which has no password.
type devState struct {
	PublicURL string `json:"public_url"`
	MongoURI  string `json:"mongodb_uri,omitempty"`
}

const devStateFile = "dev.json"

func writeDevState(dataDir string, st devState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, devStateFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record dev settings in %s: %w", path, err)
	}
	return nil
}

func readDevState(dataDir string) (devState, bool) {
	if dataDir == "" {
		return devState{}, false
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return devState{}, false
	}
	b, err := os.ReadFile(filepath.Join(abs, devStateFile))
	if err != nil {
		return devState{}, false
	}
	var st devState
	if json.Unmarshal(b, &st) != nil {
		return devState{}, false
	}
	return st, true
}

// errNoDataFolder is returned by commands that read an embedded registry
// that is not there; they never create one.
var errNoDataFolder = errors.New("no Campus data folder")

// checkDataFolder makes sure the embedded registry in dir exists, without
// creating anything, and says where it looked otherwise.
func checkDataFolder(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data folder %q: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(abs, embedded.FileName)); err == nil {
		return nil
	}
	return fmt.Errorf("%w at %s (no %s there; nothing was created).\n"+
		"Run this command from the folder where `campus dev` runs, or point to its data folder with --data DIR or CAMPUS_DATA=DIR "+
		"(with Consul, set CONSUL_HTTP_ADDR)", errNoDataFolder, abs, embedded.FileName)
}

// mongoSource says where an operator command's database address comes
// from, for error messages.
func (o *mongoOptions) source(dataDir string) (uri, from string, err error) {
	switch {
	case o.uriFile != "":
		uri, err = o.resolve()
		return uri, "--mongodb-uri-file " + o.uriFile, err
	case o.uri != "":
		return o.uri, "MONGODB_URI / --mongodb-uri", nil
	}
	if st, ok := readDevState(dataDir); ok && st.MongoURI != "" {
		abs, _ := filepath.Abs(dataDir)
		return st.MongoURI, "the embedded database `campus dev` recorded in " + filepath.Join(abs, devStateFile), nil
	}
	return defaultMongoURI, "the default (MONGODB_URI is not set)", nil
}

// probeTimeout bounds the quick reachability check of the database.
const probeTimeout = 2 * time.Second

// probeMongo dials the hosts of a mongodb:// URI, so that a database that
// is not running is reported at once in plain words rather than after the
// driver's server-selection timeout. Other URIs (mongodb+srv) are left to
// the driver.
func probeMongo(ctx context.Context, uri, from, dataDir string) error {
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
	return fmt.Errorf("cannot reach the database at %s (%s; address from %s; data folder %s).\n"+
		"Is `campus dev` running? It serves the embedded database; run this command while it runs, from the same folder "+
		"(or with the same --data). With your own MongoDB, set MONGODB_URI",
		redactURI(uri), why, from, abs)
}
