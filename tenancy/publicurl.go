package tenancy

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Tenant URLs people are told to open. Every tenant is served at its own
// host names, so what the proxy's address adds is a scheme and a port: the
// public URL (--public-url, $CAMPUS_PUBLIC_URL) gives them, and TenantURL
// is the one function that builds a tenant's link from it. `campus dev`
// records the public URL it serves (and the address of its embedded
// database) in the data folder, so commands in a second terminal print and
// use the same.

// PublicURL is the scheme and port the proxy is reached at.
type PublicURL struct {
	Scheme string // "http" or "https"
	Port   string // "" for the scheme's default
}

// DefaultPublicURL is used when nothing says otherwise: plain HTTP on port
// 80, what a proxy at :80 behind nothing serves.
var DefaultPublicURL = PublicURL{Scheme: "http"}

// ParsePublicURL accepts "http://host:port", "https://host" and the like;
// only the scheme and port are kept (each tenant has its own host).
func ParsePublicURL(s string) (PublicURL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" && !strings.Contains(s, "://") {
		return PublicURL{}, fmt.Errorf("public URL %q: want http://HOST[:PORT] or https://HOST[:PORT]", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return PublicURL{}, fmt.Errorf("public URL %q: only a scheme, host and port are allowed (tenants are served at /)", s)
	}
	p := PublicURL{Scheme: u.Scheme, Port: u.Port()}
	if (p.Scheme == "http" && p.Port == "80") || (p.Scheme == "https" && p.Port == "443") {
		p.Port = ""
	}
	return p, nil
}

// PublicURLFromListen is what a proxy listening on addr serves, over
// plain HTTP.
func PublicURLFromListen(addr string) PublicURL {
	p := PublicURL{Scheme: "http"}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "80" {
		p.Port = port
	}
	return p
}

// String is the public URL with a placeholder host, for messages and the
// data folder.
func (p PublicURL) String() string { return p.TenantURL("HOST", "") }

// TenantURL is the address of path at host: the one place tenant links
// are made.
func (p PublicURL) TenantURL(host, path string) string {
	if p.Port != "" {
		host = net.JoinHostPort(host, p.Port)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return p.Scheme + "://" + host + path
}
