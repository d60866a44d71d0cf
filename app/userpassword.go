package app

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/campus-saas/campus/store"
)

// A superuser sets another user's password (Django's "change password"
// link on the user page): the same rules as everywhere, every error at
// once; the user's sessions and reset links end, and the history says who
// did it (never the password).

const flashUserPassword flashKind = "user_password_set"

func init() {
	flashFormats[flashUserPassword] = "The password of “%s” was changed. Their sessions have been logged out."
	staffViews = append(staffViews, "admin_user_password")
}

func userPasswordURL(id string) string { return usersURL + url.PathEscape(id) + "/password/" }

type userPasswordData struct {
	ID, Username string
	Errors       map[string]string
}

func (s *server) renderUserPassword(w http.ResponseWriter, r *http.Request, status int, d userPasswordData) {
	s.render(w, r, status, "admin_user_password", &page{
		Title:  s.tr(r, "Change password: %s", d.Username),
		Admin:  true,
		Crumbs: crumbs("Change password", usersCrumb, crumb{Label: d.Username, URL: userChangeURL(d.ID)}),
		Data:   d,
	})
}

func (s *server) handleUserPasswordForm(w http.ResponseWriter, r *http.Request) {
	if u, ok := s.user(w, r); ok {
		s.renderUserPassword(w, r, http.StatusOK, userPasswordData{ID: u.ID, Username: u.Username})
	}
}

func (s *server) handleUserPassword(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	d := userPasswordData{ID: u.ID, Username: u.Username, Errors: map[string]string{}}
	p1, p2 := r.PostForm.Get("password1"), r.PostForm.Get("password2")
	checkNewPassword(d.Errors, "password1", "password2", p1, p2, u.Username, u.Email)
	if len(d.Errors) > 0 {
		s.renderUserPassword(w, r, http.StatusUnprocessableEntity, d)
		return
	}
	err := s.store.SetPassword(r.Context(), u.Username, p1)
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound)
		return
	case errors.As(err, &fe):
		d.Errors = map[string]string{"password1": userErrors(s.locale(r), fe)["password"]}
		s.renderUserPassword(w, r, http.StatusUnprocessableEntity, d)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("set password: %w", err))
		return
	}
	s.record(r, store.PasswordSet(actor(r), u))
	s.log.Info("password set by a superuser", "request_id", stateOf(r).id, "user_id", u.ID, "by", stateOf(r).session.UserID)
	s.setFlash(w, r, flashUserPassword, u.Username)
	http.Redirect(w, r, userChangeURL(u.ID), http.StatusSeeOther)
}
