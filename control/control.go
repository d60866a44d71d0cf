// Package control is the operators' door (issue 26): an authenticated
// JSON API over the tenant lifecycle (tenancy.Manager) and the registry,
// and a server-rendered console for people, on one http.Handler that
// `campus control` serves on a listener of its own (docs/PRODUCTION.md
// says why not on the proxy's admin listener).
//
// Every request but /healthz and the console's log-in carries an
// operator token (registry.Operators): the API as "Authorization: Bearer
// campus-op-…", the console as a session cookie it was exchanged for. A
// read-only token may list and show; every write is refused to it. Every
// API call and every console action is written to the audit trail: which
// token, what, when, outcome.
//
// The server acts on the registry (and, on Consul, on ACL tokens) with
// the credentials it was started with; nothing a caller sends is ever
// used as a credential. Domain logic stays in tenancy/ and registry/: the
// handlers decode, check rights, call, and encode.
package control

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
)

// Registry is what the control server needs of the registry: the whole
// of it (hosts, idle timeout, memory) and the operator tokens and audit
// trail.
type Registry interface {
	registry.Registry
	registry.Operators
}

// Server serves the control API and console.
type Server struct {
	Manager  *tenancy.Manager
	Registry Registry
	Stats    *Stats // nil: no proxy counters
	Public   tenancy.PublicURL
	Logger   *slog.Logger
	// SecureCookies marks the console's cookies Secure even on plain
	// HTTP (behind a TLS-terminating balancer), as `campus app
	// --secure-cookies` does.
	SecureCookies bool
	// MaxUpload bounds an uploaded archive (default 4 GiB).
	MaxUpload int64
	// Retention is how long a deleted school's data is kept when the
	// request names none (default 30 days, as `campus tenant delete`).
	Retention time.Duration
	// AuditKeep is how long audit entries are kept: older ones are
	// deleted at the server's start and every hour (default
	// DefaultAuditKeep, a year).
	AuditKeep time.Duration

	once     sync.Once
	handler  http.Handler
	idem     idempotency
	sessions sessions
	touched  sync.Map // token ID → time.Time of the last recorded use
}

// DefaultRetention is Server.Retention's default.
const DefaultRetention = 30 * 24 * time.Hour

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) retention() time.Duration {
	if s.Retention <= 0 {
		return DefaultRetention
	}
	return s.Retention
}

func (s *Server) maxUpload() int64 {
	if s.MaxUpload <= 0 {
		return 4 << 30
	}
	return s.MaxUpload
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(func() { s.handler = s.routes() })
	s.handler.ServeHTTP(w, r)
}

// route is one API endpoint: the console has its own (console.go).
type route struct {
	method, path string
	action       string // the audit trail's "what"
	write        bool   // refused to read-only tokens
	handle       func(s *Server, w http.ResponseWriter, r *http.Request)
}

// APIPrefix starts every API path.
const APIPrefix = "/api/v1"

// apiRoutes is the whole API; openapi.yaml documents exactly these
// (TestOpenAPIMatchesRoutes).
var apiRoutes = []route{
	{"GET", "/schools", "schools.list", false, (*Server).listSchools},
	{"POST", "/schools", "schools.create", true, (*Server).createSchool},
	{"GET", "/schools/{name}", "schools.show", false, (*Server).showSchool},
	{"PATCH", "/schools/{name}", "schools.set", true, (*Server).setSchool},
	{"DELETE", "/schools/{name}", "schools.delete", true, (*Server).deleteSchool},
	{"POST", "/schools/{name}/suspend", "schools.suspend", true, (*Server).suspendSchool},
	{"POST", "/schools/{name}/resume", "schools.resume", true, (*Server).resumeSchool},
	{"POST", "/schools/{name}/restore", "schools.restore", true, (*Server).restoreSchool},
	{"POST", "/schools/{name}/purge", "schools.purge", true, (*Server).purgeSchool},
	{"POST", "/schools/{name}/hosts", "schools.host_add", true, (*Server).addHost},
	{"DELETE", "/schools/{name}/hosts/{host}", "schools.host_remove", true, (*Server).removeHost},
	{"GET", "/schools/{name}/backup", "backups.download", false, (*Server).downloadBackup},
	{"POST", "/backups/restore", "backups.restore", true, (*Server).restoreUpload},
	{"GET", "/audit", "audit.list", false, (*Server).listAudit},
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range apiRoutes {
		mux.Handle(rt.method+" "+APIPrefix+rt.path, s.api(rt))
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint (see /api/v1/openapi.yaml)")
	})
	mux.HandleFunc("GET "+APIPrefix+"/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.consoleRoutes(mux)
	return securityHeaders(mux)
}

// securityHeaders are those of the school admin: no framing, no sniffing,
// no referrer, nothing from elsewhere.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// call is what one request's audit entry needs, filled in by the
// handler.
type call struct {
	op     registry.OperatorToken
	target string
	detail string
	failed bool // failed after the answer began (its status says 200)
	// idemKey and schoolID: a create's Idempotency-Key and the school it
	// created (the detail then holds the request's hash).
	idemKey, schoolID string
}

type callKey struct{}

func callOf(r *http.Request) *call {
	c, _ := r.Context().Value(callKey{}).(*call)
	if c == nil {
		return &call{}
	}
	return c
}

// api authenticates a request with its bearer token, refuses writes to
// read-only tokens, runs the handler and writes the audit entry.
func (s *Server) api(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, err := s.authenticate(r.Context(), bearer(r))
		if err != nil {
			s.logger().Warn("control API: refused a request without a valid operator token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="campus control"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "an operator token is required (Authorization: Bearer campus-op-…; see campus operator token create)")
			return
		}
		c := &call{op: op, target: r.PathValue("name")}
		r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
		sw := &statusWriter{ResponseWriter: w}
		if rt.write && op.ReadOnly {
			c.detail = "read-only token"
			writeError(sw, http.StatusForbidden, "read_only", "this operator token is read-only: it may list and show, not "+rt.action)
		} else {
			rt.handle(s, sw, r)
		}
		s.audit(r.Context(), c, rt.action, sw.status())
	})
}

// audit writes one entry; a failure to write it is logged (the call has
// happened).
func (s *Server) audit(ctx context.Context, c *call, action string, status int) {
	outcome := registry.OutcomeOK
	switch {
	case status >= 500:
		outcome = registry.OutcomeFailed
	case status >= 400:
		outcome = registry.OutcomeRefused
	}
	if c.failed {
		outcome = registry.OutcomeFailed
	}
	e := registry.AuditEntry{TokenID: c.op.ID, Operator: c.op.Name, Action: action, Target: c.target,
		Outcome: outcome, Status: status, Detail: c.detail, IdempotencyKey: c.idemKey, SchoolID: c.schoolID}
	if _, err := s.Registry.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		s.logger().Error("control: write audit entry", "err", err, "operator", c.op.Name, "action", action, "target", c.target, "status", status)
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
