package app

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Cookie names.
const (
	sessionCookie = "campus_session" // the store's session token
	csrfCookie    = "campus_csrf"    // double-submit token for anonymous forms (login)
	flashCookie   = "campus_flash"   // one signed success message
)

// csrfField is the hidden form field every form carries.
const csrfField = "csrf_token"

func (s *server) secureCookie(r *http.Request) bool {
	return s.secure || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *server) setCookie(w http.ResponseWriter, r *http.Request, c *http.Cookie) {
	c.HttpOnly = true
	c.SameSite = http.SameSiteLaxMode
	c.Secure = s.secureCookie(r)
	http.SetCookie(w, c)
}

func (s *server) clearCookie(w http.ResponseWriter, r *http.Request, name, path string) {
	s.setCookie(w, r, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1})
}

func (s *server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	maxAge := int(expires.Sub(s.now()).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	s.setCookie(w, r, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Expires: expires.UTC(), MaxAge: maxAge})
}

func (s *server) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	s.clearCookie(w, r, sessionCookie, "/")
}

// randomToken returns 256 random bits, base64url encoded (43 characters).
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokensEqual(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// anonymousCSRF returns the double-submit token of an anonymous visitor,
// setting the cookie when the visitor has none yet.
func (s *server) anonymousCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		if _, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			return c.Value
		}
	}
	tok := randomToken()
	s.setCookie(w, r, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/admin/"})
	return tok
}

// readForm limits the request body and parses the form (urlencoded or
// multipart). Its error is already answered.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) bool {
	// Room for an uploaded file, or the same file carried in a hidden
	// field of the import confirmation, plus the other fields.
	r.Body = http.MaxBytesReader(w, r.Body, 2*s.maxUpload+1<<20)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(8 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.renderError(w, r, http.StatusRequestEntityTooLarge)
		} else {
			s.renderError(w, r, http.StatusBadRequest)
		}
		return false
	}
	return true
}

// csrfUnsafe refuses a state-changing request (any method but GET, HEAD,
// OPTIONS) whose csrf_token is not the token of the request's session (or
// that has no session at all).
func (s *server) csrfUnsafe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if !s.readForm(w, r) {
			return
		}
		st := stateOf(r)
		if st.session == nil || !tokensEqual(r.PostForm.Get(csrfField), st.session.CSRFToken) {
			s.csrfFailure(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// csrfAnonymous protects forms shown to anonymous visitors (login) with a
// double-submit cookie: the field must equal the campus_csrf cookie.
func (s *server) csrfAnonymous(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.readForm(w, r) {
			return
		}
		c, err := r.Cookie(csrfCookie)
		if err != nil || !tokensEqual(r.PostForm.Get(csrfField), c.Value) {
			s.csrfFailure(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) csrfFailure(w http.ResponseWriter, r *http.Request) {
	s.log.Warn("CSRF check failed", "request_id", stateOf(r).id, "route", stateOf(r).route)
	s.renderError(w, r, http.StatusForbidden)
}

// loginURL is the login page, coming back to next afterwards.
func loginURL(next string) string {
	if next == "" || next == "/admin/" || next == studentsURL || !safeNext(next) {
		return "/admin/login/"
	}
	return "/admin/login/?" + url.Values{"next": {next}}.Encode()
}

// safeNext accepts only local admin paths as redirect targets after login:
// never another host or scheme.
func safeNext(next string) bool {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "/admin/logout/") {
		return false
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(next)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && strings.HasPrefix(u.Path, "/admin/")
}
