// Package certs gives the proxy its TLS certificates: on demand from any
// ACME directory through certmagic (Manager), or from a local development
// CA in the data folder (DevCA). Both decide from the proxy's in-memory
// routing table (a Routes), with no network hop: a registered school's host
// gets a certificate, any other server name gets no certificate, no ACME
// order and a refused handshake.
//
// Certificates and ACME state live in a certmagic.Storage: a folder
// (certmagic.FileStorage, embedded mode) or Consul KV with locks
// (ConsulStorage), so that several proxies share certificates and never
// order the same one twice.
//
// The package imports neither proxy/ nor deploy/ nor cmd/: the proxy
// implements Routes, cmd/ wires the two together.
package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

// Routes is what certificates are decided from: the proxy's current
// routing table. Both methods must be cheap and safe for concurrent use
// (the proxy reads an atomic pointer).
type Routes interface {
	// TenantOf returns the tenant that a normalised host routes to, if
	// it is routed (active, idle or suspended school).
	TenantOf(host string) (tenant string, ok bool)
	// Hosts returns every routed host with its tenant.
	Hosts() map[string]string
}

// Metric names, exported for dashboards, alert rules and tests.
const (
	// MetricCertExpiry is, per tenant, the earliest NotAfter (Unix
	// seconds) among the certificates served for its hosts. Labels:
	// tenant (registered tenants only, so cardinality is bounded by
	// the fleet).
	MetricCertExpiry = "campus_proxy_certificate_expiry_timestamp_seconds"
	// MetricACMEOrders counts ACME orders placed.
	MetricACMEOrders = "campus_proxy_acme_orders_total"
	// MetricACMEErrors counts orders that failed or were not placed,
	// by reason (ReasonFailed, ReasonCapped, ReasonBackoff, ReasonRefused).
	MetricACMEErrors = "campus_proxy_acme_errors_total"
	// MetricHandshakesRefused counts TLS handshakes refused because the
	// server name is no school's host, by reason (ReasonNoSNI,
	// ReasonBadName, ReasonUnknownHost: a bounded label).
	MetricHandshakesRefused = "campus_proxy_tls_handshakes_refused_total"
	LabelTenant             = "tenant"
	LabelReason             = "reason"
	ReasonFailed            = "failed"       // the ACME directory refused or validation failed
	ReasonCapped            = "capped"       // the orders-per-hour cap was reached
	ReasonBackoff           = "backoff"      // the host failed recently and waits
	ReasonRefused           = "refused"      // the name is no longer a school's host
	ReasonNoSNI             = "no_sni"       // a handshake without a server name
	ReasonBadName           = "bad_name"     // a server name that is no host name
	ReasonUnknownHost       = "unknown_host" // a host name that is no school's
)

// ErrUnknownHost is returned (wrapped) for a server name that is no
// school's host: the handshake is refused.
var ErrUnknownHost = errors.New("not a school's host")

// allowed normalises a ClientHello's server name and checks it against the
// routing table; reason is the MetricHandshakesRefused label of a refusal.
func allowed(routes Routes, serverName string) (host, tenant, reason string, err error) {
	if serverName == "" {
		return "", "", ReasonNoSNI, fmt.Errorf("no server name (SNI) in the handshake: %w", ErrUnknownHost)
	}
	host, err = registry.NormalizeHost(serverName)
	if err != nil {
		return "", "", ReasonBadName, fmt.Errorf("server name %.100q: %w", serverName, ErrUnknownHost)
	}
	tenant, ok := routes.TenantOf(host)
	if !ok {
		return "", "", ReasonUnknownHost, fmt.Errorf("server name %q: %w", host, ErrUnknownHost)
	}
	return host, tenant, "", nil
}

// refuse counts a refused handshake and returns what GetCertificate must
// return for crypto/tls to send the unrecognized_name alert (RFC 6066
// section 3) rather than internal_error: no certificate and no error.
// crypto/tls then fails the handshake with "tls: no certificates
// configured", which the server's error log reports (rate-limited: see
// internal/httpserve).
func (m *sourceMetrics) refuse(reason string) (*tls.Certificate, error) {
	m.refused.WithLabelValues(reason).Inc()
	return nil, nil
}

// baseTLSConfig is the TLS configuration both sources serve with: HTTP/2
// and HTTP/1.1, TLS 1.2 or newer.
func baseTLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		GetCertificate: get,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// expiryCollector reports MetricCertExpiry at scrape time from the
// routing table and a lookup of the certificate served for a host, so
// that tenants that left vanish from the metric by themselves.
type expiryCollector struct {
	routes Routes
	expiry func(host string) (time.Time, bool)
	desc   *prometheus.Desc
}

func newExpiryCollector(routes Routes, expiry func(string) (time.Time, bool)) *expiryCollector {
	return &expiryCollector{routes: routes, expiry: expiry, desc: prometheus.NewDesc(MetricCertExpiry,
		"Earliest expiry (Unix seconds) of the certificates the proxy holds for the tenant's hosts.",
		[]string{LabelTenant}, nil)}
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	earliest := map[string]time.Time{}
	for host, tenant := range c.routes.Hosts() {
		t, ok := c.expiry(host)
		if !ok {
			continue
		}
		if e, seen := earliest[tenant]; !seen || t.Before(e) {
			earliest[tenant] = t
		}
	}
	for tenant, t := range earliest {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t.Unix()), tenant)
	}
}

// sourceMetrics are registered by both sources (a DevCA places no ACME
// orders: its counters stay 0), so that dashboards and alerts see the same
// series whichever source a proxy uses.
type sourceMetrics struct {
	refused *prometheus.CounterVec
	orders  prometheus.Counter
	errors  *prometheus.CounterVec
}

func newSourceMetrics(reg prometheus.Registerer, routes Routes, expiry func(string) (time.Time, bool)) (*sourceMetrics, error) {
	m := &sourceMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricHandshakesRefused,
			Help: "TLS handshakes refused (alert unrecognized_name) because the server name is no school's host, by reason.",
		}, []string{LabelReason}),
		orders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricACMEOrders, Help: "ACME orders placed by this proxy.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricACMEErrors, Help: "ACME orders that failed or were not placed, by reason.",
		}, []string{LabelReason}),
	}
	for _, r := range []string{ReasonFailed, ReasonCapped, ReasonBackoff, ReasonRefused} {
		m.errors.WithLabelValues(r)
	}
	for _, r := range []string{ReasonNoSNI, ReasonBadName, ReasonUnknownHost} {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.refused, m.orders, m.errors, newExpiryCollector(routes, expiry)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register certificate metrics: %w", err)
		}
	}
	return m, nil
}
