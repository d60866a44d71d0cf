package proxyserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/certs"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
)

// TLS is the HTTPS side of a proxy: certificates from the dev CA
// (DevCADir) or on demand from ACME, for routed hosts only.
type TLS struct {
	Listen   string // address of the HTTPS listener
	HSTS     string // Strict-Transport-Security value; "": none
	Redirect bool   // plain-HTTP requests (other than ACME challenges) get a redirect to HTTPS

	// DevCADir, when set, is the folder of the local CA (created once)
	// that issues for every school host; the ACME fields are then unused.
	DevCADir string

	Directory     string // ACME directory
	Email         string
	Roots         *x509.CertPool // trusted for the directory's own HTTPS; nil: the system's
	OrdersPerHour int
	// CertDir is the folder certificates and ACME state are kept in;
	// "" keeps them in Consul KV (Config.Consul, with locks, shared by
	// every proxy).
	CertDir string
}

// tlsSource is what the proxy needs of a certificate source.
type tlsSource interface {
	TLSConfig() *tls.Config
}

var (
	_ tlsSource = (*certs.Manager)(nil)
	_ tlsSource = (*certs.DevCA)(nil)
)

// tlsSetup is the HTTPS side of a proxy, ready to serve.
type tlsSetup struct {
	config      *tls.Config
	httpHandler http.Handler // for the plain-HTTP listener
	stop        func()
	notice      string // printed at start (dev CA instructions)
}

// setup builds the certificate source for p. consulReg is the registry
// when it is Consul (for certificates kept in its KV).
func (o *TLS) setup(p *proxy.Proxy, metrics prometheus.Registerer, logger *slog.Logger, consulReg *consul.Registry) (*tlsSetup, error) {
	_, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("HTTPS listen address %q: %w", o.Listen, err)
	}
	var redirect http.Handler = p
	if o.Redirect {
		var eligible func(string) bool // the dev CA issues for every school host
		if o.DevCADir == "" {
			eligible = certs.Eligible
		}
		redirect = p.RedirectToHTTPS(port, eligible)
	}
	if o.DevCADir != "" {
		ca, err := certs.LoadOrCreateDevCA(o.DevCADir, p, metrics)
		if err != nil {
			return nil, err
		}
		return &tlsSetup{config: ca.TLSConfig(), httpHandler: redirect, stop: func() {}, notice: ca.TrustInstructions(o.DevCADir)}, nil
	}
	cfg := certs.ACMEConfig{
		Routes: p, Logger: logger.With("component", "certs"), Registerer: metrics,
		Directory: o.Directory, Email: o.Email, OrdersPerHour: o.OrdersPerHour, TrustedRoots: o.Roots,
	}
	if o.CertDir != "" {
		if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
			return nil, fmt.Errorf("certificate folder: %w", err)
		}
		cfg.Storage = &certmagic.FileStorage{Path: o.CertDir}
		logger.Info("certificates kept in a folder", "dir", o.CertDir)
	} else {
		if consulReg == nil {
			return nil, fmt.Errorf("certificates kept in Consul need the Consul registry")
		}
		cfg.Storage = certs.NewConsulStorage(consulReg.Client(), consulReg.CertsPrefix())
		logger.Info("certificates kept in Consul KV", "prefix", consulReg.CertsPrefix())
	}
	m, err := certs.NewManager(cfg)
	if err != nil {
		return nil, err
	}
	logger.Info("HTTPS with certificates on demand", "acme_directory", o.Directory, "orders_per_hour", o.OrdersPerHour)
	return &tlsSetup{config: m.TLSConfig(), httpHandler: m.HTTPHandler(redirect), stop: m.Stop}, nil
}
