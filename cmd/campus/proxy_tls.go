package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
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

// tlsSource is what the proxy needs of a certificate source.
type tlsSource interface {
	TLSConfig() *tls.Config
}

// tlsSetup is the HTTPS side of a proxy, ready to serve.
type tlsSetup struct {
	config      *tls.Config
	httpHandler http.Handler // for the plain-HTTP listener
	stop        func()
	notice      string // printed at start (dev CA instructions)
}

// setup builds the certificate source for p. consulReg is the registry
// when it is Consul (for --cert-storage consul).
func (o *tlsOptions) setup(p *proxy.Proxy, metrics prometheus.Registerer, logger *slog.Logger, consulReg *consul.Registry) (*tlsSetup, error) {
	_, port, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, usageErr("--tls-listen %q: %v", o.listen, err)
	}
	var redirect http.Handler = p
	if o.redirect {
		var eligible func(string) bool // the dev CA issues for every school host
		if !o.dev {
			eligible = certs.Eligible
		}
		redirect = p.RedirectToHTTPS(port, eligible)
	}
	if o.dev {
		dir := filepath.Join(o.dataDir, "ca")
		ca, err := certs.LoadOrCreateDevCA(dir, p, metrics)
		if err != nil {
			return nil, err
		}
		return &tlsSetup{config: ca.TLSConfig(), httpHandler: redirect, stop: func() {}, notice: ca.TrustInstructions(dir)}, nil
	}
	cfg := certs.ACMEConfig{
		Routes: p, Logger: logger.With("component", "certs"), Registerer: metrics,
		Directory: o.acmeDirectory, Email: o.acmeEmail, OrdersPerHour: o.ordersPerHour,
	}
	if o.acmeRoots != "" {
		pem, err := os.ReadFile(o.acmeRoots)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-roots: %w", err)
		}
		cfg.TrustedRoots = x509.NewCertPool()
		if !cfg.TrustedRoots.AppendCertsFromPEM(pem) {
			return nil, usageErr("--acme-ca-roots %s: no PEM certificate in it", o.acmeRoots)
		}
	}
	storage := o.storage
	if storage == "auto" {
		storage = "file"
		if consulReg != nil {
			storage = "consul"
		}
	}
	switch storage {
	case "file":
		dir := o.certDir
		if dir == "" {
			dir = filepath.Join(o.dataDir, "certs")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("certificate folder: %w", err)
		}
		cfg.Storage = &certmagic.FileStorage{Path: dir}
		logger.Info("certificates kept in a folder", "dir", dir)
	case "consul":
		if consulReg == nil {
			return nil, usageErr("--cert-storage consul needs the Consul registry")
		}
		cfg.Storage = certs.NewConsulStorage(consulReg.Client(), consulReg.CertsPrefix())
		logger.Info("certificates kept in Consul KV", "prefix", consulReg.CertsPrefix())
	default:
		return nil, usageErr("--cert-storage %q: want file, consul or auto", o.storage)
	}
	m, err := certs.NewManager(cfg)
	if err != nil {
		return nil, err
	}
	logger.Info("HTTPS with certificates on demand", "acme_directory", o.acmeDirectory, "orders_per_hour", o.ordersPerHour)
	return &tlsSetup{config: m.TLSConfig(), httpHandler: m.HTTPHandler(redirect), stop: m.Stop}, nil
}

var (
	_ tlsSource = (*certs.Manager)(nil)
	_ tlsSource = (*certs.DevCA)(nil)
)

// servedPublicURL is the scheme and port a proxy with these options
// serves schools at: https on the TLS listener's port when HTTPS is on,
// else plain HTTP on --listen's (publicURLFromListen).
func (po proxyOptions) servedPublicURL() publicURL {
	if !po.tls.enabled() {
		return tenancy.PublicURLFromListen(po.listen)
	}
	p := publicURL{Scheme: "https"}
	if _, port, err := net.SplitHostPort(po.tls.listen); err == nil && port != "443" {
		p.Port = port
	}
	return p
}
