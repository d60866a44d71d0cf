// Package proxy is the tenant-routing reverse proxy (`campus proxy`). Every
// request's Host header names exactly one tenant (school) in the registry;
// the request goes to one of that tenant's healthy app instances and nowhere
// else.
//
// The routing table is rebuilt off the request path from registry snapshots
// (Update, usually via Run) and published with an atomic pointer, so the
// request path never locks. Request path, top to bottom, in ServeHTTP:
// normalise Host → look up route → hold while a scaled-to-zero tenant
// starts → pick an instance → forward (retrying another instance when that
// is safe) → log and count.
package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

// Defaults for zero Config fields.
const (
	DefaultHoldTimeout     = 5 * time.Second
	DefaultUpstreamTimeout = 30 * time.Second
	DefaultDialTimeout     = 2 * time.Second
	DefaultMaxRequestBody  = 32 << 20
)

// Waker starts instances on demand (scale to zero). The proxy calls Wake
// when a request arrives for an active tenant with no healthy instance, at
// most about once per second per tenant, in its own goroutine: Wake may
// block, but should return once the start is under way. The held request
// proceeds as soon as the registry shows a healthy instance.
type Waker interface {
	Wake(ctx context.Context, tenant string)
}

// Config configures a Proxy. Zero values get the defaults above.
type Config struct {
	Logger *slog.Logger // default slog.Default()
	// AccessLog receives the "request" line of every request that went
	// well (aborted and failed ones go to Logger); default Logger. Give it
	// a handler over an AccessLog writer, so that a request costs no write
	// system call, and close that writer after the listeners have drained.
	AccessLog *slog.Logger
	// Registerer receives the proxy's metrics; nil means a private registry
	// (never the global one).
	Registerer prometheus.Registerer
	// HoldTimeout is how long a request for an active tenant with no
	// healthy instance waits for one before a 503. Negative: do not wait.
	HoldTimeout time.Duration
	// UpstreamTimeout is how long to wait for an app's response headers
	// before a 504.
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to an app instance.
	DialTimeout time.Duration
	// MaxRequestBody is the largest request body forwarded (else 413).
	MaxRequestBody int64
	// Waker, if set, is told about requests for tenants with no instance.
	Waker Waker
	// TrustedProxies are the load balancers and TLS terminators in front
	// of the proxy whose X-Forwarded-For and X-Forwarded-Proto are
	// believed (clientaddr.go); nobody's by default.
	TrustedProxies []netip.Prefix

	// Lookup, if set, is asked about a host with no route, or whose active
	// tenant has no healthy instance, before the request is answered 404
	// or held (lookup.go). It must be the registry that Run watches.
	Lookup registry.HostLookup
	// LookupRate bounds lookups per second (burst as many); default
	// DefaultLookupRate.
	LookupRate float64
	// LookupNegativeTTL is how long a host a lookup did not route is not
	// looked up again; default DefaultLookupNegativeTTL, negative: none.
	LookupNegativeTTL time.Duration

	// ResetRate and ResetBurst are the budget of cancelled requests of
	// one HTTP/2 connection before it is told GOAWAY (abuse.go); defaults
	// DefaultResetRate and DefaultResetBurst. It needs ConnContext on the
	// server.
	ResetRate  float64
	ResetBurst int
	// ResetHold is how long a request on a suspect HTTP/2 connection (one
	// that cancelled requests lately, or from an address that flooded)
	// waits for its client's reset before it is forwarded (abuse.go);
	// default DefaultResetHold, negative: no wait.
	ResetHold time.Duration
	// MaxConnsPerAddr caps the connections open at once from one client
	// address on a listener wrapped by LimitListener (connlimit.go);
	// default DefaultMaxConnsPerAddr, negative: no cap.
	MaxConnsPerAddr int
	// ConnRatePerAddr and ConnBurstPerAddr bound the new connections
	// accepted from one client address on a listener wrapped by
	// LimitTLSListener, a second and at once (connlimit.go); defaults
	// DefaultConnRatePerAddr and DefaultConnBurstPerAddr; a negative
	// rate: no bound.
	ConnRatePerAddr  float64
	ConnBurstPerAddr int
	// SampleEvery is the period of sampled access-log lines (cancelled
	// requests, malformed bodies); default DefaultSampleEvery.
	SampleEvery time.Duration
}

// Proxy routes requests by Host to the tenant's app instances. It is an
// http.Handler; create it with New, feed it with Run or Update.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	access   *slog.Logger
	gatherer prometheus.Gatherer // set when the proxy made its own registry
	metrics  *metrics
	scale    scaleMetrics // hold.go
	unknown  *tenantState // counts requests for unknown and malformed hosts
	rp       *httputil.ReverseProxy
	upstream *http.Transport

	table       atomic.Pointer[table] // never nil
	seenVersion atomic.Uint64         // latest snapshot version given to Update
	watchErr    atomic.Pointer[string]
	lookups     *lookups   // nil without Config.Lookup
	samplers    samplers   // abuse.go
	floods      floodAddrs // abuse.go

	mu           sync.Mutex // serialises Update; guards the fields below
	lastSnapshot registry.Snapshot
	tenants      map[string]*tenantState   // by name, carried between tables
	instances    map[string]*instanceState // by instance ID, carried between tables
	applied      uint64                    // version of the last snapshot Update finished with
	appliedCh    chan struct{}             // closed and replaced when Update finishes
}

// New returns a Proxy with an empty routing table: every host is unknown
// until the first Update.
func New(cfg Config) (*Proxy, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	if cfg.HoldTimeout == 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.ResetRate <= 0 {
		cfg.ResetRate = DefaultResetRate
	}
	if cfg.ResetBurst <= 0 {
		cfg.ResetBurst = DefaultResetBurst
	}
	if cfg.ResetHold == 0 {
		cfg.ResetHold = DefaultResetHold
	}
	if cfg.ConnRatePerAddr == 0 {
		cfg.ConnRatePerAddr = DefaultConnRatePerAddr
	}
	if cfg.ConnBurstPerAddr <= 0 {
		cfg.ConnBurstPerAddr = DefaultConnBurstPerAddr
	}
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxRequestBody <= 0 {
		cfg.MaxRequestBody = DefaultMaxRequestBody
	}
	if cfg.LookupRate <= 0 {
		cfg.LookupRate = DefaultLookupRate
	}
	if cfg.LookupNegativeTTL == 0 {
		cfg.LookupNegativeTTL = DefaultLookupNegativeTTL
	}
	var gatherer prometheus.Gatherer
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, gatherer = reg, reg
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, access: cfg.AccessLog, gatherer: gatherer,
		tenants: map[string]*tenantState{}, instances: map[string]*instanceState{}, appliedCh: make(chan struct{})}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register proxy metrics: %w", err)
	}
	p.metrics = m
	if p.scale, err = newScaleMetrics(cfg.Registerer); err != nil { // hold.go
		return nil, fmt.Errorf("register proxy metrics: %w", err)
	}
	if cfg.Lookup != nil {
		if p.lookups, err = newLookups(cfg, cfg.Registerer); err != nil {
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	p.unknown = &tenantState{name: UnknownTenant, metrics: m.forTenant(UnknownTenant)}
	p.samplers = newSamplers(cfg.AccessLog, cfg.SampleEvery)
	p.upstream = newTransport(cfg)
	p.rp = p.newReverseProxy()
	p.table.Store(&table{routes: map[string]*route{}, replaced: make(chan struct{})})
	return p, nil
}

// ServeHTTP routes one request. Each step either answers the request or
// hands on to the next.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex, r := p.begin(w, r)
	defer p.finish(ex)

	host, err := registry.NormalizeHost(r.Host)
	if err != nil {
		p.reply(ex, pageBadHost, nil)
		return
	}
	ex.host = host
	tbl := p.table.Load()
	if tbl.seq == 0 {
		// Before the first table from the registry, no host is known to
		// be unknown: wait for it rather than answer a school with 404.
		if tbl = p.awaitFirstTable(r.Context()); tbl.seq == 0 {
			p.reply(ex, pageStarting, nil)
			return
		}
	}
	rt := tbl.routes[host]
	if p.lookups != nil && (rt == nil || rt.state == registry.StateActive && len(rt.pool) == 0) {
		// Maybe the registry knows more than the watch has brought yet.
		if t := p.lookupHost(r.Context(), host); t != nil {
			rt = t.routes[host]
		}
	}
	if rt == nil {
		p.reply(ex, pageUnknownSchool, nil)
		return
	}
	ex.tenant = rt.tenant
	if p.resetBefore(r) {
		ex.status = StatusClientClosed // reset before it got here: not forwarded (abuse.go)
		return
	}
	if overBudget(r) {
		ex.sample = sampleCancelled
		p.reply(ex, pageTooManyResets, rt) // a stream of a connection told GOAWAY: not forwarded
		return
	}
	if internalPath(r.URL.Path) {
		// Apps expose their metrics to Prometheus directly, never to
		// the public.
		p.reply(ex, pageNotFound, rt)
		return
	}
	if rt.state == registry.StateActive && len(rt.pool) == 0 {
		rt = p.hold(r.Context(), host, rt) // scale-to-zero: see hold.go
		if rt == nil {                     // the host left the registry meanwhile
			p.reply(ex, pageUnknownSchool, nil)
			return
		}
		ex.tenant = rt.tenant
	}
	switch {
	case rt.state != registry.StateActive:
		p.reply(ex, pageMaintenance, rt)
		return
	case len(rt.pool) == 0:
		if r.Context().Err() != nil {
			ex.status = StatusClientClosed
			return
		}
		rt.tenant.metrics.errors[reasonNoInstance].Inc()
		p.reply(ex, pageUnavailable, rt)
		return
	case r.ContentLength > p.cfg.MaxRequestBody:
		p.reply(ex, pageTooLarge, rt)
		return
	}

	if !p.preRead(ex) {
		return // a malformed body (400) or a client gone (499): not forwarded
	}
	ex.route = rt
	p.rp.ServeHTTP(ex.w, r) // forward.go: picks instances, retries, maps errors
}

// exchange is one request's bookkeeping, shared by ServeHTTP, the
// ReverseProxy hooks and the transport (through the request context).
type exchange struct {
	start     time.Time
	r         *http.Request
	w         *statusWriter
	requestID string // made on first use (id)
	host      string // normalised; "" when malformed
	tenant    *tenantState
	route     *route
	sample    string       // kind of sampled log line (abuse.go); "" logs every one
	body      *trackedBody // nil without a request body
	views     []*bodyView  // bodies of retried attempts
	inst      *instance    // instance of the current or last attempt
	status    int          // status recorded for metrics when nothing was written (499)
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (p *Proxy) begin(w http.ResponseWriter, r *http.Request) (*exchange, *http.Request) {
	p.metrics.inFlight.Inc()
	ex := &exchange{
		start:  time.Now(),
		w:      &statusWriter{ResponseWriter: w},
		tenant: p.unknown,
	}
	if cs := connFrom(r.Context()); cs != nil && cs.goaway.Load() {
		goingAway(w) // this connection reset too many requests (abuse.go)
	}
	if r.Body != nil && r.Body != http.NoBody {
		ex.body = &trackedBody{rc: http.MaxBytesReader(w, r.Body, p.cfg.MaxRequestBody)}
		r.Body = ex.body
	}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	ex.r = r
	return ex, r
}

// id returns the request's ID (requestID), made on first use: a request
// answered without a page or a log line (a stream of a reset flood, whose
// line is sampled) needs none.
func (ex *exchange) id() string {
	if ex.requestID == "" {
		ex.requestID = requestID(ex.r.Header.Get(HeaderRequestID))
	}
	return ex.requestID
}

// useInstance moves the request's in-flight count to in.
func (ex *exchange) useInstance(in *instance) {
	if ex.inst != nil {
		ex.inst.inFlight.Add(-1)
	} else {
		ex.tenant.active.Add(1)
	}
	ex.inst = in
	in.inFlight.Add(1)
}

// finish records the request's metrics and log line. A panic — usually
// ReverseProxy's abort when the app's response broke off mid-body — is
// logged and re-raised so that net/http closes the connection.
func (p *Proxy) finish(ex *exchange) {
	aborted := recover()
	for _, v := range ex.views {
		_ = v.Close()
	}
	if ex.inst != nil {
		ex.inst.inFlight.Add(-1)
		ex.tenant.active.Add(-1)
	}
	p.metrics.inFlight.Dec()
	status := ex.w.status
	switch {
	case ex.status != 0 && status == 0:
		status = ex.status
	case status == 0:
		status = http.StatusOK // nothing written: net/http sends an empty 200
	}
	if status == StatusClientClosed {
		ex.sample = sampleCancelled
		p.cancelled(ex)
	}
	elapsed := time.Since(ex.start)
	ex.tenant.metrics.request(status)
	ex.tenant.metrics.duration.Observe(elapsed.Seconds())
	ex.tenant.touch(ex.start.Add(elapsed)) // scale to zero: see hold.go

	log, level, msg := p.access, slog.LevelInfo, "request"
	switch {
	case aborted == http.ErrAbortHandler:
		log, level, msg = p.log, slog.LevelWarn, "request aborted: the app's response broke off"
		ex.tenant.metrics.errors[reasonOther].Inc()
	case aborted != nil:
		log, level, msg = p.log, slog.LevelError, fmt.Sprintf("request panicked: %v", aborted)
	}
	host := ex.host
	if host == "" {
		host = truncate(ex.r.Host, 100)
	}
	if ex.sample != "" && aborted == nil && !p.samplers[ex.sample].Allow(host) {
		log = nil // counted; one line per period says how many (abuse.go)
	}
	if log != nil && log.Enabled(ex.r.Context(), level) {
		instance := ""
		if ex.inst != nil {
			instance = ex.inst.id
		}
		log.LogAttrs(ex.r.Context(), level, msg,
			slog.String("tenant", ex.tenant.name),
			slog.String("host", host),
			slog.String("method", ex.r.Method),
			slog.String("path", truncate(ex.r.URL.Path, 200)),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.String("instance", instance),
			slog.String("request_id", ex.id()),
		)
	}
	if aborted != nil {
		panic(aborted)
	}
}

// internalPath reports whether a request path is for the proxy's and apps'
// operators only (metrics), however it is spelled.
func internalPath(p string) bool {
	if !strings.Contains(p, "metrics") {
		return false
	}
	c := path.Clean("/" + p)
	return c == "/metrics" || len(c) > len("/metrics/") && c[:len("/metrics/")] == "/metrics/"
}

// statusWriter records the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (used by ReverseProxy to flush and
// to hijack upgraded connections) reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack records 101 for upgraded connections (WebSockets), whose status
// line ReverseProxy writes to the raw connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var errNoInstance = errors.New("no healthy instance")
