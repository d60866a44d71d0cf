package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/campus-saas/campus/store"
)

// Passwords in the browser: a logged-in user changes their own (old
// password, new twice; the rules are the store's, shared with the CLI);
// a person with a one-time reset link sets a new one.

const (
	passwordURL         = "/admin/password/"
	resetURL            = "/admin/password-reset/"
	msgPasswordMismatch = "The two password fields didn’t match."
	msgWrongOldPassword = "Your old password was entered incorrectly. Please enter it again."
	msgResetInvalid     = "This password reset link is invalid, has expired or has already been used. " +
		"Ask a superuser of your school for a new one."
)

type passwordData struct {
	Errors map[string]string
	// reset form only
	Token    string
	Username string
	Invalid  bool
}

// checkNewPassword puts into errs every problem of a new password typed
// twice (fields f1 and f2), all at once: missing, the two differing, and
// each rule it breaks for the account with these attributes (username,
// email).
func checkNewPassword(errs map[string]string, f1, f2, p1, p2 string, attrs ...string) {
	switch {
	case p1 == "":
		errs[f1] = msgRequired
		return
	case p1 != p2:
		errs[f2] = msgPasswordMismatch
	}
	if probs := store.PasswordProblems(p1, attrs...); len(probs) > 0 {
		errs[f1] = strings.Join(probs, "\n")
	}
}

// passwordErrors moves the store's "password" message to the field of
// the new password.
func passwordErrors(l *locale, fe store.FieldErrors) map[string]string {
	out := userErrors(l, fe)
	if m, ok := out["password"]; ok {
		delete(out, "password")
		out["new_password1"] = m
	}
	return out
}

func (s *server) renderPassword(w http.ResponseWriter, r *http.Request, status int, d passwordData) {
	s.render(w, r, status, "admin_password", &page{
		Title:  "Password change",
		Admin:  true,
		Crumbs: crumbs("Password change"),
		Data:   d,
	})
}

func (s *server) handlePasswordForm(w http.ResponseWriter, r *http.Request) {
	s.renderPassword(w, r, http.StatusOK, passwordData{})
}

func (s *server) handlePasswordChange(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	old := r.PostForm.Get("old_password")
	p1, p2 := r.PostForm.Get("new_password1"), r.PostForm.Get("new_password2")
	d := passwordData{Errors: map[string]string{}}
	if old == "" {
		d.Errors["old_password"] = msgRequired
	}
	checkNewPassword(d.Errors, "new_password1", "new_password2", p1, p2, st.session.Username)
	if len(d.Errors) > 0 {
		s.renderPassword(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	err := s.store.ChangePassword(r.Context(), st.token, clientAddress(r), old, p1)
	var fe store.FieldErrors
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		s.log.Info("password change refused: locked out", "request_id", st.id, "user_id", st.session.UserID)
		d.Errors["old_password"] = "Too many wrong passwords. Try again later."
	case errors.Is(err, store.ErrWrongPassword):
		s.log.Info("password change refused: wrong old password", "request_id", st.id, "user_id", st.session.UserID)
		d.Errors["old_password"] = msgWrongOldPassword
	case errors.As(err, &fe):
		d.Errors = passwordErrors(s.locale(r), fe)
	case errors.Is(err, store.ErrNotFound): // the session ended meanwhile
		http.Redirect(w, r, loginURL(passwordURL), http.StatusSeeOther)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("change password: %w", err))
		return
	}
	if len(d.Errors) > 0 {
		s.renderPassword(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	s.log.Info("password changed", "request_id", st.id, "user_id", st.session.UserID)
	s.setFlash(w, r, flashPasswordChanged, "")
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

// ---- reset with a one-time link (anonymous) ----

func (s *server) renderReset(w http.ResponseWriter, r *http.Request, status int, d passwordData) {
	s.render(w, r, status, "admin_reset", &page{
		Title: "Set a new password",
		Admin: true,
		CSRF:  s.anonymousCSRF(w, r),
		Data:  d,
	})
}

func (s *server) handleResetForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	u, err := s.store.ResetTokenUser(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrResetInvalid):
		s.renderReset(w, r, http.StatusGone, passwordData{Invalid: true})
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("check reset link: %w", err))
		return
	}
	s.renderReset(w, r, http.StatusOK, passwordData{Token: token, Username: u.Username})
}

func (s *server) handleReset(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	token := r.PostForm.Get("token")
	p1, p2 := r.PostForm.Get("new_password1"), r.PostForm.Get("new_password2")
	u, err := s.store.ResetTokenUser(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrResetInvalid):
		s.renderReset(w, r, http.StatusGone, passwordData{Invalid: true})
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("check reset link: %w", err))
		return
	}
	d := passwordData{Token: token, Username: u.Username, Errors: map[string]string{}}
	checkNewPassword(d.Errors, "new_password1", "new_password2", p1, p2, u.Username, u.Email)
	if len(d.Errors) > 0 {
		s.renderReset(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	_, err = s.store.ResetPassword(r.Context(), token, p1)
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrResetInvalid): // used by a racing request
		s.renderReset(w, r, http.StatusGone, passwordData{Invalid: true})
		return
	case errors.As(err, &fe):
		d.Errors = passwordErrors(s.locale(r), fe)
		s.renderReset(w, r, http.StatusUnprocessableEntity, d)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("reset password: %w", err))
		return
	}
	s.log.Info("password reset with a one-time link", "request_id", st.id, "user_id", u.ID)
	// A session this browser had (perhaps another user's) ends too.
	if st.token != "" {
		_ = s.store.DeleteSession(r.Context(), st.token)
		s.clearSessionCookie(w, r)
		st.session = nil
	}
	s.setFlash(w, r, flashPasswordReset, "")
	http.Redirect(w, r, "/admin/login/", http.StatusSeeOther)
}
