package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/campus-saas/campus/store"
)

// Messages of the login form. A failure never says which part was wrong:
// a wrong password and an unknown username get the same page. A refusal
// because of a lock-out says so, and until when (as django-axes's lock-out
// page does), whatever the password: the store locks unknown usernames
// exactly like known ones, so the page tells nothing about which exist,
// and it is shown without the password being checked, so it is no oracle.
const (
	msgBadLogin = "Please enter a correct username and password."
	msgRequired = "This field is required."
)

type loginData struct {
	Username string
	Next     string
	Error    string
	Errors   map[string]string
	Locked   *lockNotice
}

// lockNotice is what the login page says about a lock-out.
type lockNotice struct {
	Until time.Time
	Scope string
}

// lockScopes word store.LockScope for the login page.
var lockScopes = map[store.LockScope]string{
	store.LockPair:    "after too many failed logins for this username from your network",
	store.LockAddress: "because of too many failed logins from your network, for the usernames that failed from it",
	store.LockUser:    "after too many failed logins for this username",
}

// clientAddress is the address login failures are counted by (see
// store.Authenticate). Behind the campus proxy it is the X-Forwarded-For
// the proxy set: the proxy deletes every client-sent X-Forwarded-For (and
// Forwarded, X-Real-Ip) and sets exactly one value, the address of the
// peer it accepted the connection from (proxy/forward.go, rewrite). The
// app trusts that header as it trusts the tenant header: apps listen on
// loopback or a private network that only the proxies reach. Should
// several values arrive anyway (another proxy in front that appends), only
// the last is used, the one added next to the app: anything before it may
// have come from the client. A header that is not an IP address counts as
// the one shared "unknown" address. Without the header (a direct request)
// it is the peer's address.
func clientAddress(r *http.Request) string {
	if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
		last := vs[len(vs)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return ""
		}
		return ip.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *server) renderLogin(w http.ResponseWriter, r *http.Request, d loginData) {
	s.renderLoginStatus(w, r, http.StatusOK, d)
}

func (s *server) renderLoginStatus(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	s.render(w, r, status, "admin_login", &page{
		Title: "Log in",
		Admin: true,
		CSRF:  s.anonymousCSRF(w, r),
		Data:  d,
	})
}

func afterLogin(next string) string {
	if safeNext(next) {
		return next
	}
	return "/admin/students/"
}

func (s *server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !safeNext(next) {
		next = ""
	}
	if stateOf(r).session != nil {
		http.Redirect(w, r, afterLogin(next), http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, loginData{Next: next})
}

func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	d := loginData{
		Username: strings.TrimSpace(r.PostForm.Get("username")),
		Next:     r.PostForm.Get("next"),
	}
	if !safeNext(d.Next) {
		d.Next = ""
	}
	password := r.PostForm.Get("password")
	if d.Username == "" || password == "" {
		d.Errors = map[string]string{}
		if d.Username == "" {
			d.Errors["username"] = msgRequired
		}
		if password == "" {
			d.Errors["password"] = msgRequired
		}
		s.renderLogin(w, r, d)
		return
	}

	client := clientAddress(r)
	u, err := s.store.Authenticate(r.Context(), d.Username, password, client)
	var locked *store.LockedError
	switch {
	case errors.Is(err, store.ErrBadCredentials): // *LockedError too
		s.metrics.loginFailures.Inc()
		// Neither the username (people type passwords into it) nor the
		// password is logged.
		if errors.As(err, &locked) {
			s.log.Info("login refused: locked out", "request_id", st.id, "client", client, "lock", string(locked.Scope))
			d.Locked = &lockNotice{Until: locked.Until, Scope: lockScopes[locked.Scope]}
			s.renderLoginStatus(w, r, http.StatusTooManyRequests, d)
			return
		}
		s.log.Info("login failed", "request_id", st.id, "client", client)
		d.Error = msgBadLogin
		s.renderLogin(w, r, d)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("authenticate: %w", err))
		return
	}

	// A new session every time: a token planted before login (fixation)
	// is dropped, never promoted.
	if st.token != "" {
		if err := s.store.DeleteSession(r.Context(), st.token); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("delete previous session at login", "request_id", st.id, "err", err)
		}
	}
	token, sess, err := s.store.CreateSession(r.Context(), u)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("create session: %w", err))
		return
	}
	s.setSessionCookie(w, r, token, sess.ExpiresAt)
	s.clearCookie(w, r, csrfCookie, "/admin/")
	s.log.Info("login", "request_id", st.id, "user_id", u.ID)
	http.Redirect(w, r, afterLogin(d.Next), http.StatusSeeOther)
}

func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	if err := s.store.DeleteSession(r.Context(), st.token); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, fmt.Errorf("delete session: %w", err))
		return
	}
	s.clearSessionCookie(w, r)
	st.session = nil
	s.setFlash(w, r, flashLoggedOut, "")
	s.log.Info("logout", "request_id", st.id)
	http.Redirect(w, r, "/admin/login/", http.StatusSeeOther)
}
