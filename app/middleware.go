package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// reqState is shared by every layer handling one request. It is put in the
// context once, by observe, so that inner layers can fill it in without
// copying the request.
type reqState struct {
	id    string
	route string

	// storageFull: the request's save was refused for lack of space; its
	// log line is a WARN (storagefull.go logs the ERROR, rate-limited).
	storageFull bool

	// Set by withSession when the cookie names a live session of this
	// tenant. token is the cookie value: never log it.
	session *store.Session
	token   string

	locale *locale // the page's language and zone, chosen once (locale.go)
}

type stateKey struct{}

func stateOf(r *http.Request) *reqState {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{} // only for handlers called outside observe (tests)
}

// statusWriter records the status code and size of a response.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
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
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// contentSecurityPolicy allows only this origin's own files: no inline
// script or style, no frames, forms posting only to ourselves. Bootstrap's
// form controls draw their icons from data: SVG images.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// observe is the outermost layer: request id, security headers, panic
// recovery, one log line and the request metrics.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{id: requestID(r.Header.Get("X-Request-Id"))}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		sw := &statusWriter{ResponseWriter: w}

		h := sw.Header()
		h.Set("X-Request-Id", st.id)
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")

		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "request_id", st.id, "method", r.Method,
					"route", st.route, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.code == 0 {
					s.renderError(sw, r, http.StatusInternalServerError)
				} else if sw.code < 500 {
					sw.code = http.StatusInternalServerError // for the log and metrics only
				}
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			route := st.route
			if route == "" {
				route = routeNotFound
			}
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
			level := slog.LevelInfo
			switch {
			case code >= 500 && st.storageFull:
				level = slog.LevelWarn
			case code >= 500:
				level = slog.LevelError
			case probeRoutes[route]:
				// Probes and scrapes come every few seconds; they are
				// only worth a line when something is wrong.
				level = slog.LevelDebug
			}
			if code == statusClientClosed && !s.cancelled.Allow(r.URL.Path) {
				return // counted; one line per period says how many
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", st.id),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.Path),
				slog.Int("status", code),
				slog.Int64("bytes", sw.bytes),
				slog.Duration("duration", d),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// requestID keeps a sane client or proxy supplied id, or makes one.
func requestID(in string) string {
	if len(in) > 0 && len(in) <= 128 {
		ok := true
		for i := 0; i < len(in); i++ {
			c := in[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
				ok = false
				break
			}
		}
		if ok {
			return in
		}
	}
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// route labels a matched request with its ServeMux pattern.
func (s *server) route(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stateOf(r).route = r.Pattern
		h.ServeHTTP(w, r)
	})
}

// probeRoutes are logged at debug level when they succeed.
var probeRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// routeAs labels a request with a fixed route name.
func (s *server) routeAs(label string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stateOf(r).route = label
		h(w, r)
	})
}

// TenantHeader is set by the proxy to the name of the tenant it routed the
// request to (after stripping any client-sent copy).
const TenantHeader = "X-Campus-Tenant"

// requireTenantHeader refuses requests the proxy meant for another tenant.
func (s *server) requireTenantHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range r.Header.Values(TenantHeader) {
			if v != s.tenant.Name {
				s.misdirected(w, r, "tenant header names another tenant")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requireTenantHost refuses requests whose Host is not one of the tenant's.
func (s *server) requireTenantHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, err := registry.NormalizeHost(r.Host)
		if err != nil || !s.current().HasHost(host) {
			s.misdirected(w, r, "host is not one of the tenant's")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) misdirected(w http.ResponseWriter, r *http.Request, why string) {
	st := stateOf(r)
	st.route = routeMisdirected
	s.log.Warn("misdirected request refused", "request_id", st.id, "reason", why)
	s.renderError(w, r, http.StatusMisdirectedRequest)
}

// withSession loads the admin session named by the session cookie. A
// token unknown to this tenant's database (expired, logged out, or made by
// another tenant) leaves the request anonymous and clears the cookie.
func (s *server) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		st := stateOf(r)
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			sess, err := s.store.Session(r.Context(), c.Value)
			switch {
			case err == nil:
				st.session, st.token = &sess, c.Value
			case errors.Is(err, store.ErrNotFound):
				s.clearSessionCookie(w, r)
			default:
				s.serverError(w, r, fmt.Errorf("load session: %w", err))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requireAdmin sends anonymous visitors to the login page, coming back to
// where they were going afterwards.
func (s *server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stateOf(r).session == nil {
			http.Redirect(w, r, loginURL(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}
}

// cancelledLogEvery is the period of the sampled log lines of cancelled
// requests: the first after a quiet period, then one per period with the
// count (internal/lograte).
const cancelledLogEvery = 10 * time.Second
