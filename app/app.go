// Package app is the school web app of ONE tenant: a public list of
// students and a Django-style admin site, served from the one database the
// tenant's store is bound to.
//
// The server learns its tenant from Config at start-up and never picks a
// database from a request. It answers only requests whose Host is one of the
// tenant's hosts (421 Misdirected Request otherwise), so a request routed to
// the wrong process by mistake finds nothing. The hosts may change while it
// runs (custom domains, Config.Hosts); the tenant's name, ID and database
// never do.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/lograte"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// DefaultMaxUploadBytes limits an uploaded file (CSV import) when
// Config.MaxUploadBytes is zero.
const DefaultMaxUploadBytes = 10 << 20

// Config is everything a tenant's app server needs.
type Config struct {
	// Tenant is the one tenant this server serves; its Hosts are the only
	// Host headers answered.
	Tenant registry.Tenant
	// Hosts, when set, is asked on every request for the tenant's current
	// record (`campus tenant host add|remove` while the app runs); only its
	// Hosts, PrimaryHost and DisplayName are used, and a record of another
	// tenant (name or ID) is ignored. Nil means Tenant, fixed.
	Hosts func() registry.Tenant
	// Store is bound to the tenant's database.
	Store *store.Store
	// Logger receives one line per request (tenant added by the server).
	// Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the app's metrics; nil means a new registry.
	Registerer prometheus.Registerer
	// Gatherer is served on /metrics. Nil means Registerer when that is
	// also a Gatherer (such as *prometheus.Registry).
	Gatherer prometheus.Gatherer
	// SecureCookies forces the Secure attribute on cookies; otherwise it is
	// set when the request came over TLS or with X-Forwarded-Proto: https.
	SecureCookies bool
	// MaxUploadBytes limits uploads (default DefaultMaxUploadBytes).
	MaxUploadBytes int64
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

type server struct {
	tenant    registry.Tenant // name, ID and database: fixed for life
	hosts     func() registry.Tenant
	store     *store.Store
	preload   sync.Once // the read model's load, at the first ready answer (health.go)
	log       *slog.Logger
	gatherer  prometheus.Gatherer
	secure    bool
	maxUpload int64
	now       func() time.Time

	views    *views
	settings settingsCache // the school's settings, for language and zone (locale.go)
	static   *staticFiles
	metrics  *metrics

	imports *importGate // imports being planned or running (importgate.go)
	jobs    *importJobs // imports started in the background (importjob.go)
	// For tests: told of each import started, before the answer.
	importStarted func(*store.ImportRun)

	// cancelled samples the log lines of requests whose client went away
	// (499): a client can cause any number of them (issue 25).
	cancelled *lograte.Limiter
	// fullLog samples the "disk full" ERROR lines (storagefull.go).
	fullLog *lograte.Limiter

	// studentsGauge throttles gauge refreshes triggered by reads.
	gaugeMu sync.Mutex
	gaugeAt time.Time
}

// current is the tenant with its current hosts and display name: those of
// Config.Hosts when it names the same tenant (name and ID), else those of
// start-up.
func (s *server) current() registry.Tenant {
	t := s.tenant
	if s.hosts == nil {
		return t
	}
	if u := s.hosts(); u.Name == t.Name && u.ID == t.ID && len(u.Hosts) > 0 {
		t.Hosts, t.PrimaryHost, t.DisplayName = u.Hosts, u.PrimaryHost, u.DisplayName
	}
	return t
}

// NewServer returns the HTTP handler of one tenant's app.
func NewServer(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.routes(), nil
}

func newServer(cfg Config) (*server, error) {
	if err := cfg.Tenant.Validate(); err != nil {
		return nil, fmt.Errorf("app: tenant: %w", err)
	}
	if cfg.Store == nil {
		return nil, errors.New("app: a store is required")
	}
	s := &server{
		tenant:    cfg.Tenant,
		hosts:     cfg.Hosts,
		store:     cfg.Store,
		log:       cfg.Logger,
		gatherer:  cfg.Gatherer,
		secure:    cfg.SecureCookies,
		maxUpload: cfg.MaxUploadBytes,
		now:       cfg.Now,
		imports:   newImportGate(importMaxPerApp),
		jobs:      newImportJobs(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("tenant", cfg.Tenant.Name)
	s.cancelled = lograte.New(cancelledLogEvery, func(n int, last string) {
		s.log.Info("requests sampled", "kind", "cancelled", "count", n, "period", cancelledLogEvery.String(), "last", last)
	})
	s.fullLog = newFullLog(s)
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUploadBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if s.gatherer == nil {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("app: Gatherer is required when Registerer is not a Gatherer")
		}
		s.gatherer = g
	}
	var err error
	if s.metrics, err = newMetrics(reg, cfg.Tenant.Name, cfg.Store); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	s.static, s.views = a.static, a.views
	return s, nil
}

// loadAssets loads the static files and parses the templates once per
// process: they hold nothing of any tenant (a page's tenant comes in its
// data), never change once built (views' locale sets are behind their
// lock), and cost about 20 ms of CPU and 6 MB of garbage per build. A
// pooled process builds them while it waits for its tenant
// (appserver.WarmUp), so that a start after the bind parses nothing
// (BenchmarkNewServer).
var loadAssets = sync.OnceValues(func() (assets, error) {
	st, err := loadStatic()
	if err != nil {
		return assets{}, err
	}
	v, err := parseViews(st.url)
	if err != nil {
		return assets{}, err
	}
	return assets{static: st, views: v}, nil
})

// WarmUp parses every page in the default language ahead of need: for a
// process that waits for its tenant (the supervisor's pool), so that its
// first pages after the bind parse nothing.
func WarmUp() error {
	a, err := loadAssets()
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	for name := range a.views.files {
		if _, err := a.views.forLocale(defaultLocale(), name); err != nil {
			return fmt.Errorf("app: %w", err)
		}
	}
	return nil
}

type assets struct {
	static *staticFiles
	views  *views
}
