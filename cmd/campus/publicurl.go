package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/tenancy"
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
	if st, ok := tenancy.ReadDevState(dataDir); ok && st.PublicURL != "" {
		if p, err := parsePublicURL(st.PublicURL); err == nil {
			return p, nil
		}
	}
	return defaultPublicURL, nil
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
