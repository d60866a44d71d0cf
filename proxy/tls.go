package proxy

import (
	"net"
	"net/http"
	"strings"

	"github.com/campus-saas/campus/registry"
)

// TenantOf returns the tenant a normalised host routes to in the current
// table (active, idle or suspended schools; not deleted or creating ones).
// It reads the same atomic table as requests: the TLS layer decides
// certificates from it with no network hop (certs.Routes).
func (p *Proxy) TenantOf(host string) (string, bool) {
	rt := p.table.Load().routes[host]
	if rt == nil {
		return "", false
	}
	return rt.tenant.name, true
}

// Hosts returns every routed host with its tenant (certs.Routes).
func (p *Proxy) Hosts() map[string]string {
	routes := p.table.Load().routes
	out := make(map[string]string, len(routes))
	for h, rt := range routes {
		out[h] = rt.tenant.name
	}
	return out
}

// TLSOptions shape what the proxy adds on its TLS listener.
type TLSOptions struct {
	// HSTS is the Strict-Transport-Security value sent on HTTPS
	// responses ("max-age=31536000" for a year); empty sends none. It is
	// never sent for localhost, *.localhost or an IP address (see
	// hstsApplies).
	HSTS string
}

// ServeTLS wraps the proxy for its TLS listener. A request whose Host is
// not the server name (SNI) the connection was opened for gets 421
// Misdirected Request, never another school's content under the first
// school's certificate: each certificate names one host, so such a request
// is a client reusing a connection it should not (HTTP/2 coalescing) or
// someone probing; 421 makes a browser retry on a fresh connection. The
// app learns the scheme from the proxy alone (X-Forwarded-Proto: https,
// set by rewrite from the connection, whatever the client sent).
func (p *Proxy) ServeTLS(opts TLSOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, err2 := registry.NormalizeHost(r.Host)
		if opts.HSTS != "" && err2 == nil && hstsApplies(host) {
			w.Header().Set("Strict-Transport-Security", opts.HSTS)
		}
		if r.TLS != nil {
			sni, err1 := registry.NormalizeHost(r.TLS.ServerName)
			if err1 != nil || err2 != nil || sni != host {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusMisdirectedRequest)
				_, _ = w.Write([]byte("421 Misdirected Request: this connection is for another host name.\n"))
				return
			}
		}
		p.ServeHTTP(w, r)
	})
}

// hstsApplies reports whether a browser may be told to use only HTTPS for
// a normalised host. Not for localhost and *.localhost (development names:
// a year of forced HTTPS would break a later plain-HTTP `campus dev` on
// the same names) nor for IP addresses (RFC 6797 section 8.1.1: a UA
// ignores HSTS for IP literals; sending it anyway only misleads).
func hstsApplies(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	return net.ParseIP(host) == nil
}

// RedirectToHTTPS answers plain-HTTP requests with a redirect to the same
// URL over HTTPS (301 for GET and HEAD, 308 otherwise, so methods and
// bodies are kept). httpsPort is left out of the URL when it is "443".
// Hosts that are no school's get the 404 of unknown hosts, so the redirect
// says nothing about which names exist. ACME HTTP-01 challenges are
// answered before this handler (certs.Manager.HTTPHandler). eligible, if
// set, says which hosts can have a certificate at all (a public CA does not
// issue for *.localhost): the others are served over plain HTTP as before.
func (p *Proxy) RedirectToHTTPS(httpsPort string, eligible func(host string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, err := registry.NormalizeHost(r.Host)
		if err != nil {
			http.Error(w, "400 Bad Request: malformed Host", http.StatusBadRequest)
			return
		}
		if _, ok := p.TenantOf(host); !ok || (eligible != nil && !eligible(host)) {
			p.ServeHTTP(w, r) // unknown: the proxy's own 404 page; not eligible: plain HTTP
			return
		}
		target := host
		if strings.Contains(host, ":") {
			target = "[" + host + "]"
		}
		if httpsPort != "" && httpsPort != "443" {
			target = net.JoinHostPort(host, httpsPort)
		}
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, "https://"+target+r.URL.RequestURI(), code)
	})
}
