package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Defaults for zero ACMEConfig fields.
const (
	// DefaultDirectory is Let's Encrypt's production directory.
	DefaultDirectory = certmagic.LetsEncryptProductionCA
	// DefaultOrdersPerHour stays well under Let's Encrypt's 300 new
	// orders per account per 3 hours.
	DefaultOrdersPerHour = 60
	// DefaultFailureBackoff is the first wait after a host's failed
	// order; it doubles per failure up to MaxFailureBackoff, so a host
	// fails at most 5 times an hour (Let's Encrypt: 5 failed
	// validations per host per hour).
	DefaultFailureBackoff = 2 * time.Minute
	MaxFailureBackoff     = time.Hour
)

// ACMEConfig configures a Manager.
type ACMEConfig struct {
	Routes  Routes            // required
	Storage certmagic.Storage // required: a FileStorage or ConsulStorage
	Logger  *slog.Logger      // default slog.Default()
	// Registerer receives the certificate metrics; nil: none.
	Registerer prometheus.Registerer
	// Directory is the ACME directory URL (default Let's Encrypt).
	Directory string
	// Email is the ACME account's contact (optional, recommended).
	Email string
	// TrustedRoots, if set, are the only roots trusted for the ACME
	// directory's own HTTPS (a private ACME server, tests).
	TrustedRoots *x509.CertPool
	// OrdersPerHour caps new orders (default DefaultOrdersPerHour).
	OrdersPerHour int
	// FailureBackoff is the first back-off after a host's failed order
	// (default DefaultFailureBackoff).
	FailureBackoff time.Duration
	// RenewCheckInterval is how often held certificates are checked for
	// renewal (default certmagic's, 10 minutes).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the fraction of a certificate's lifetime left
	// when it is renewed (default certmagic's, 1/3).
	RenewalWindowRatio float64
}

// Manager obtains, stores, renews and serves certificates on demand with
// certmagic. Create it with NewManager; serve with TLSConfig on the TLS
// listener and HTTPHandler on the plain-HTTP listener (it answers ACME
// HTTP-01 challenges, also those of orders another proxy placed, from the
// shared storage).
type Manager struct {
	routes  Routes
	log     *slog.Logger
	magic   *certmagic.Config
	cache   *certmagic.Cache
	acme    *certmagic.ACMEIssuer
	metrics *sourceMetrics
}

// NewManager builds a Manager. It starts certmagic's maintenance goroutine
// (renewals); Stop ends it.
func NewManager(cfg ACMEConfig) (*Manager, error) {
	if cfg.Routes == nil || cfg.Storage == nil {
		return nil, errors.New("certs: Routes and Storage are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Directory == "" {
		cfg.Directory = DefaultDirectory
	}
	if cfg.OrdersPerHour <= 0 {
		cfg.OrdersPerHour = DefaultOrdersPerHour
	}
	if cfg.FailureBackoff <= 0 {
		cfg.FailureBackoff = DefaultFailureBackoff
	}
	m := &Manager{routes: cfg.Routes, log: cfg.Logger}
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zap.NewNop(),
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage:            cfg.Storage,
		RenewalWindowRatio: cfg.RenewalWindowRatio,
		// Let's Encrypt has ended OCSP; nothing to staple.
		OCSP:     certmagic.OCSPConfig{DisableStapling: true},
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: m.decide},
		Logger:   zap.NewNop(),
	})
	m.magic = magic
	m.acme = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:     cfg.Directory,
		TestCA: cfg.Directory,
		Email:  cfg.Email,
		Agreed: true,
		// The proxy answers HTTP-01 on its HTTP listener (HTTPHandler);
		// TLS-ALPN-01 is off so that one challenge type is in play.
		DisableTLSALPNChallenge: true,
		TrustedRoots:            cfg.TrustedRoots,
		Logger:                  zap.NewNop(),
	})
	var err error
	if m.metrics, err = newSourceMetrics(cfg.Registerer, cfg.Routes, m.expiry); err != nil {
		m.cache.Stop()
		return nil, err
	}
	magic.Issuers = []certmagic.Issuer{newCappedIssuer(m.acme, cfg, m.routes, m.metrics)}
	return m, nil
}

// decide is certmagic's on-demand DecisionFunc: the routing table, and
// no order for a name no public CA issues for (*.localhost, .internal, IP
// addresses): those would only fail and count against the rate limits.
func (m *Manager) decide(_ context.Context, name string) error {
	if _, ok := m.routes.TenantOf(name); !ok {
		return fmt.Errorf("%q: %w", name, ErrUnknownHost)
	}
	if !Eligible(name) {
		return fmt.Errorf("%q is a local name no public CA issues for (use campus dev --tls for those)", name)
	}
	return nil
}

// Eligible reports whether an ACME CA can issue for host; the proxy keeps
// serving the others over plain HTTP rather than redirecting them.
func Eligible(host string) bool { return certmagic.SubjectQualifiesForPublicCert(host) }

// GetCertificate serves a school's certificate (loading it from storage
// or ordering it when needed) and refuses any other server name before
// certmagic sees it, so that a host removed from a school stops being
// served even while its certificate is still cached.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if _, _, reason, err := allowed(m.routes, hello.ServerName); err != nil {
		return m.metrics.refuse(reason)
	}
	return m.magic.GetCertificate(hello)
}

// TLSConfig is the configuration of the proxy's TLS listener.
func (m *Manager) TLSConfig() *tls.Config { return baseTLSConfig(m.GetCertificate) }

// HTTPHandler answers ACME HTTP-01 challenges and hands every other
// request to next (the redirect to HTTPS).
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.acme.HTTPChallengeHandler(next)
}

// Stop ends certificate maintenance.
func (m *Manager) Stop() { m.cache.Stop() }

// expiry is the NotAfter of the certificate held in memory for host.
func (m *Manager) expiry(host string) (time.Time, bool) {
	var t time.Time
	for _, c := range m.cache.AllMatchingCertificates(host) {
		if c.Leaf != nil && (t.IsZero() || c.Leaf.NotAfter.Before(t)) {
			t = c.Leaf.NotAfter
		}
	}
	return t, !t.IsZero()
}

// cappedIssuer wraps the ACME issuer with the limits a public CA imposes:
// a cap on orders per hour for the whole proxy and a per-host back-off
// after failures. It also refuses names that are no longer a school's host
// (a renewal after the host was removed).
type cappedIssuer struct {
	*certmagic.ACMEIssuer
	routes  Routes
	log     *slog.Logger
	limiter *rate.Limiter
	backoff time.Duration

	mu       sync.Mutex
	failures map[string]failure // by host

	orders prometheus.Counter
	errors *prometheus.CounterVec
}

type failure struct {
	count int
	until time.Time
}

func newCappedIssuer(acme *certmagic.ACMEIssuer, cfg ACMEConfig, routes Routes, m *sourceMetrics) *cappedIssuer {
	return &cappedIssuer{
		ACMEIssuer: acme,
		routes:     routes,
		log:        cfg.Logger,
		limiter:    rate.NewLimiter(rate.Every(time.Hour/time.Duration(cfg.OrdersPerHour)), cfg.OrdersPerHour),
		backoff:    cfg.FailureBackoff,
		failures:   map[string]failure{},
		orders:     m.orders,
		errors:     m.errors,
	}
}

// PreCheck is the ACME issuer's, never interactive: certmagic would
// otherwise read an email address from stdin when none is configured.
func (iss *cappedIssuer) PreCheck(ctx context.Context, names []string, _ bool) error {
	return iss.ACMEIssuer.PreCheck(ctx, names, false)
}

// Issue places one ACME order for the CSR's names, within the limits.
// Its errors stop certmagic's own retries (ErrNoRetry): the back-off here
// decides when a host is ordered again, so a handshake fails fast instead
// of waiting through minutes of retries.
func (iss *cappedIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	cert, err := iss.issue(ctx, csr)
	if err != nil {
		return nil, certmagic.ErrNoRetry{Err: err}
	}
	return cert, nil
}

func (iss *cappedIssuer) issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	for _, name := range csr.DNSNames {
		if _, ok := iss.routes.TenantOf(name); !ok {
			iss.errors.WithLabelValues(ReasonRefused).Inc()
			return nil, fmt.Errorf("order for %q not placed: %w", name, ErrUnknownHost)
		}
	}
	now := time.Now()
	iss.mu.Lock()
	for _, name := range csr.DNSNames {
		if f := iss.failures[name]; now.Before(f.until) {
			iss.mu.Unlock()
			iss.errors.WithLabelValues(ReasonBackoff).Inc()
			return nil, fmt.Errorf("order for %q not placed: %d failed orders, next try after %s", name, f.count, f.until.Format(time.RFC3339))
		}
	}
	iss.mu.Unlock()
	if !iss.limiter.AllowN(now, 1) {
		iss.errors.WithLabelValues(ReasonCapped).Inc()
		iss.log.Warn("ACME order not placed: orders-per-hour cap reached", "names", csr.DNSNames)
		return nil, fmt.Errorf("order for %v not placed: orders-per-hour cap reached", csr.DNSNames)
	}
	iss.orders.Inc()
	iss.log.Info("placing ACME order", "names", csr.DNSNames)
	cert, err := iss.ACMEIssuer.Issue(ctx, csr)
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if err != nil {
		iss.errors.WithLabelValues(ReasonFailed).Inc()
		for _, name := range csr.DNSNames {
			f := iss.failures[name]
			wait := iss.backoff << min(f.count, 10)
			f.count++
			f.until = time.Now().Add(min(wait, MaxFailureBackoff))
			iss.failures[name] = f
		}
		iss.log.Warn("ACME order failed", "names", csr.DNSNames, "err", err)
		return nil, fmt.Errorf("ACME order for %v: %w", csr.DNSNames, err)
	}
	for _, name := range csr.DNSNames {
		delete(iss.failures, name)
	}
	iss.log.Info("certificate issued", "names", csr.DNSNames)
	return cert, nil
}
