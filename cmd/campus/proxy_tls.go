package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/deploy/proxyserver"
	"github.com/campus-saas/campus/tenancy"
)

// tlsOptions are the HTTPS flags of `campus proxy` and `campus dev`.
type tlsOptions struct {
	dev           bool // campus dev: --tls turns on the local CA
	devTLS        bool
	listen        string
	acmeDirectory string
	acmeEmail     string
	acmeRoots     string
	ordersPerHour int
	storage       string
	certDir       string
	hsts          string
	redirect      bool
	dataDir       string // set by the command: --data
	// set by check
	roots    *x509.CertPool
	inConsul bool
}

func (o *tlsOptions) register(fs *flag.FlagSet, dev bool) {
	o.dev = dev
	if dev {
		fs.BoolVar(&o.devTLS, "tls", false, "serve the schools over HTTPS too, with certificates from a local CA created once in --data/ca (instructions to trust it are printed)")
		fs.StringVar(&o.listen, "tls-listen", "127.0.0.1:8443", "with --tls: address of the HTTPS listener (--listen then redirects to it)")
	} else {
		fs.StringVar(&o.listen, "tls-listen", "", "address of the HTTPS listener (e.g. :443); empty: HTTPS off. With it, --listen (e.g. :80) answers ACME HTTP-01 challenges and redirects everything else to HTTPS")
		fs.StringVar(&o.acmeDirectory, "acme-directory", certs.DefaultDirectory, "ACME directory certificates are ordered from, on demand, for the registered schools' hosts only")
		fs.StringVar(&o.acmeEmail, "acme-email", "", "contact address of the ACME account (expiry and policy notices)")
		fs.StringVar(&o.acmeRoots, "acme-ca-roots", "", "PEM file of the roots trusted for the ACME directory's own HTTPS (a private ACME server); default: the system's")
		fs.IntVar(&o.ordersPerHour, "acme-orders-per-hour", certs.DefaultOrdersPerHour, "cap on new ACME orders per hour (Let's Encrypt allows 300 per 3 hours); failed hosts also back off")
		fs.StringVar(&o.storage, "cert-storage", "auto", "where certificates and ACME state are kept: file (--cert-dir), consul (KV with locks, shared by every proxy), or auto (consul with the Consul registry)")
		fs.StringVar(&o.certDir, "cert-dir", "", "folder of --cert-storage file (default: <--data>/certs)")
	}
	fs.StringVar(&o.hsts, "hsts", "max-age=31536000", "Strict-Transport-Security value sent over HTTPS (never for *.localhost or IP addresses); empty: none")
	fs.BoolVar(&o.redirect, "https-redirect", true, "with HTTPS on: answer plain-HTTP requests (other than ACME challenges) with a redirect to HTTPS; false serves them as before")
}

func (o *tlsOptions) enabled() bool {
	if o.dev {
		return o.devTLS
	}
	return o.listen != ""
}

// check refuses HTTPS flags that do not parse, before anything starts:
// the listen address, the ACME roots file, the certificate storage
// (backend is the registry's kind).
func (o *tlsOptions) check(backend string) error {
	if !o.enabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return usageErr("--tls-listen %q: %v", o.listen, err)
	}
	if o.dev {
		return nil
	}
	if o.acmeRoots != "" {
		pem, err := os.ReadFile(o.acmeRoots)
		if err != nil {
			return fmt.Errorf("--acme-ca-roots: %w", err)
		}
		o.roots = x509.NewCertPool()
		if !o.roots.AppendCertsFromPEM(pem) {
			return usageErr("--acme-ca-roots %s: no PEM certificate in it", o.acmeRoots)
		}
	}
	switch o.storage {
	case "auto":
		o.inConsul = backend == "consul"
	case "file":
	case "consul":
		if backend != "consul" {
			return usageErr("--cert-storage consul needs the Consul registry")
		}
		o.inConsul = true
	default:
		return usageErr("--cert-storage %q: want file, consul or auto", o.storage)
	}
	return nil
}

// config is the HTTPS side of the proxy server, nil when HTTPS is off.
// Call it once dataDir is set.
func (o *tlsOptions) config() *proxyserver.TLS {
	if !o.enabled() {
		return nil
	}
	t := &proxyserver.TLS{Listen: o.listen, HSTS: o.hsts, Redirect: o.redirect}
	if o.dev {
		t.DevCADir = filepath.Join(o.dataDir, "ca")
		return t
	}
	t.Directory, t.Email, t.Roots, t.OrdersPerHour = o.acmeDirectory, o.acmeEmail, o.roots, o.ordersPerHour
	if !o.inConsul {
		t.CertDir = o.certDir
		if t.CertDir == "" {
			t.CertDir = filepath.Join(o.dataDir, "certs")
		}
	}
	return t
}

// servedPublicURL is the scheme and port a proxy with these options
// serves schools at: https on the TLS listener's port when HTTPS is on,
// else plain HTTP on --listen's (publicURLFromListen).
func (po proxyOptions) servedPublicURL() publicURL {
	if !po.tls.enabled() {
		return tenancy.PublicURLFromListen(po.Listen)
	}
	p := publicURL{Scheme: "https"}
	if _, port, err := net.SplitHostPort(po.tls.listen); err == nil && port != "443" {
		p.Port = port
	}
	return p
}
