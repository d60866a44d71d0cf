package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/campus-saas/campus/store"
)

// Messages of the login form. A failure never says which part was wrong.
const (
	msgBadLogin = "Please enter a correct username and password."
	msgRequired = "This field is required."
)

type loginData struct {
	Username string
	Next     string
	Error    string
	Errors   map[string]string
}

func lockedMessage(minutes int) string {
	unit := "minutes"
	if minutes == 1 {
		unit = "minute"
	}
	return fmt.Sprintf("Too many failed login attempts. Try again in %d %s.", minutes, unit)
}

func (s *server) renderLogin(w http.ResponseWriter, r *http.Request, d loginData) {
	s.render(w, r, http.StatusOK, "admin_login", &page{
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

	u, err := s.store.Authenticate(r.Context(), d.Username, password)
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		s.metrics.loginFailures.Inc()
		mins := int(locked.Until.Sub(s.now()).Minutes() + 0.999)
		d.Error = lockedMessage(max(mins, 1))
		s.log.Info("login refused: locked out", "request_id", st.id)
		s.renderLogin(w, r, d)
		return
	case errors.Is(err, store.ErrBadCredentials):
		s.metrics.loginFailures.Inc()
		d.Error = msgBadLogin
		s.log.Info("login failed", "request_id", st.id)
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
