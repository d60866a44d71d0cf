package app

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// publicFieldChoices are the fields a school may publish, those in shown
// ticked.
func publicFieldChoices(shown []string) []publicFieldChoice {
	out := make([]publicFieldChoice, len(store.PublicFieldChoices))
	for i, f := range store.PublicFieldChoices {
		out[i] = publicFieldChoice{Name: f, Label: fieldLabels[f], Shown: slices.Contains(shown, f)}
	}
	return out
}

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
	Fields    []publicFieldChoice
	Locale    localeForm
}

// localeForm is the language and time part of the settings page.
type localeForm struct {
	Language       string
	AcceptLanguage bool
	TimeZone       string
	Languages      []i18n.Language
	Zones          []string // suggestions; any IANA name is accepted
	Errors         map[string]string
}

// suggestedZones are offered in the form (the schools this serves are
// mostly in Africa); any other IANA name may be typed.
var suggestedZones = []string{"UTC", "Africa/Nairobi", "Africa/Dar_es_Salaam", "Africa/Kampala", "Africa/Kigali",
	"Africa/Lagos", "Africa/Accra", "Africa/Dakar", "Africa/Abidjan", "Africa/Kinshasa", "Africa/Johannesburg",
	"Africa/Cairo", "Europe/London", "Europe/Paris"}

func newLocaleForm(set store.Settings) localeForm {
	f := localeForm{Language: set.Language, AcceptLanguage: set.AcceptLanguage, TimeZone: set.TimeZone,
		Languages: i18n.Languages, Zones: suggestedZones}
	if !i18n.Supported(f.Language) {
		f.Language = i18n.Default
	}
	if f.TimeZone == "" {
		f.TimeZone = i18n.DefaultZone
	}
	return f
}

// publicFieldChoice is one field the public register may show.
type publicFieldChoice struct {
	Name, Label string
	Shown       bool
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
		Data:   settingsForm{StaffOnly: set.PublicListStaffOnly, Fields: publicFieldChoices(set.PublicFields), Locale: newLocaleForm(set)},
	})
}

// handleLocaleSettings saves the language and time zone: a language the
// app does not speak or a zone the zone database does not know is shown
// again with a message, and nothing is saved.
func (s *server) handleLocaleSettings(w http.ResponseWriter, r *http.Request) {
	f := localeForm{Language: r.PostForm.Get("language"), AcceptLanguage: r.PostForm.Get("accept_language") != "",
		TimeZone: strings.TrimSpace(r.PostForm.Get("time_zone")), Languages: i18n.Languages, Zones: suggestedZones,
		Errors: map[string]string{}}
	if !i18n.Supported(f.Language) {
		f.Errors["language"] = "Choose a language from the list."
	}
	if f.TimeZone == "" {
		f.TimeZone = i18n.DefaultZone
	}
	if _, err := i18n.LoadZone(f.TimeZone); err != nil {
		f.Errors["time_zone"] = "Enter a time zone of the IANA database, such as Africa/Nairobi, Europe/Paris or UTC."
	}
	if len(f.Errors) > 0 {
		set, err := s.store.Settings(r.Context())
		if err != nil {
			s.serverError(w, r, fmt.Errorf("settings: %w", err))
			return
		}
		s.render(w, r, http.StatusUnprocessableEntity, "admin_settings", &page{
			Title:  "Site settings",
			Admin:  true,
			Crumbs: crumbs("Site settings"),
			Data:   settingsForm{StaffOnly: set.PublicListStaffOnly, Fields: publicFieldChoices(set.PublicFields), Locale: f},
		})
		return
	}
	if err := s.store.SetLocale(r.Context(), f.Language, f.AcceptLanguage, f.TimeZone); err != nil {
		s.serverError(w, r, fmt.Errorf("save language and time settings: %w", err))
		return
	}
	s.forgetSettings()
	s.log.Info("settings changed", "request_id", stateOf(r).id, "user", stateOf(r).session.Username,
		"language", f.Language, "accept_language", f.AcceptLanguage, "time_zone", f.TimeZone)
	s.setFlash(w, r, flashSettings, "")
	http.Redirect(w, r, settingsURL, http.StatusSeeOther)
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
	fields := r.PostForm["public_fields"]
	for _, f := range fields {
		if !slices.Contains(store.PublicFieldChoices, f) {
			s.renderError(w, r, http.StatusBadRequest)
			return
		}
	}
	if err := s.store.SetPublicListStaffOnly(r.Context(), staffOnly); err != nil {
		s.serverError(w, r, fmt.Errorf("save settings: %w", err))
		return
	}
	if err := s.store.SetPublicFields(r.Context(), fields); err != nil {
		s.serverError(w, r, fmt.Errorf("save settings: %w", err))
		return
	}
	s.log.Info("settings changed", "request_id", stateOf(r).id, "user", stateOf(r).session.Username,
		"public_list_staff_only", staffOnly, "public_fields", fields)
	s.setFlash(w, r, flashSettings, "")
	http.Redirect(w, r, settingsURL, http.StatusSeeOther)
}
