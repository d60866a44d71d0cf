package app

import (
	"fmt"
	"net/http"
)

// Per-tenant settings. They are kept in the tenant's own database (see
// store.Settings), so the one process that serves a tenant reads them
// through its one store, and no setting of one school can reach another.

const settingsURL = "/admin/settings/"

// publicGate serves the public list only when the tenant lets anonymous
// visitors see it; when it is staff-only, a visitor without an admin
// session gets a friendly page with a link to the login, and no student
// is in the HTML. Staff who are logged in still see the list.
func (s *server) publicGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set, err := s.store.Settings(r.Context())
		if err != nil {
			s.serverError(w, r, fmt.Errorf("public list: %w", err))
			return
		}
		if !set.PublicListStaffOnly {
			next.ServeHTTP(w, r)
			return
		}
		s.withSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stateOf(r).session != nil {
				next.ServeHTTP(w, r)
				return
			}
			s.render(w, r, http.StatusOK, "public_private", &page{Title: "Students"})
		})).ServeHTTP(w, r)
	})
}

type settingsForm struct {
	StaffOnly bool
}

func (s *server) handleSettingsForm(w http.ResponseWriter, r *http.Request) {
	set, err := s.store.Settings(r.Context())
	if err != nil {
		s.serverError(w, r, fmt.Errorf("settings: %w", err))
		return
	}
	s.render(w, r, http.StatusOK, "admin_settings", &page{
		Title:  "Site settings",
		Admin:  true,
		Crumbs: crumbs("Site settings"),
		Data:   settingsForm{StaffOnly: set.PublicListStaffOnly},
	})
}

func (s *server) handleSettings(w http.ResponseWriter, r *http.Request) {
	var staffOnly bool
	switch r.PostForm.Get("public_list") {
	case "staff":
		staffOnly = true
	case "public":
	default:
		s.renderError(w, r, http.StatusBadRequest)
		return
	}
	if err := s.store.SetPublicListStaffOnly(r.Context(), staffOnly); err != nil {
		s.serverError(w, r, fmt.Errorf("save settings: %w", err))
		return
	}
	s.log.Info("settings changed", "request_id", stateOf(r).id, "user", stateOf(r).session.Username,
		"public_list_staff_only", staffOnly)
	s.setFlash(w, r, flashSettings, "")
	http.Redirect(w, r, settingsURL, http.StatusSeeOther)
}
