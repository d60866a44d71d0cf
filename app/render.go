package app

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// requiredViews are the pages the handlers render.
var requiredViews = []string{"error", "public_index", "admin_login", "admin_list", "admin_form",
	"admin_delete", "admin_delete_selected", "admin_import", "admin_settings", "admin_not_found", "public_private"}

// views holds the page templates: the base layout and the partials are
// parsed once, each page (a clone of them with its own file) on its first
// use, and each locale (language and zone) executes clones of a page with
// its own functions (locale.go), made on first use too. An app that only
// ever shows its public page parses that page and its locale's clone, not
// the 25 pages of the admin (BenchmarkViewsFirstPage):
// a start costs that much less CPU. Every page is parsed in the tests
// (TestEveryPageParses), and the files of the pages the handlers render are
// checked at start-up.
type views struct {
	base  *template.Template
	files map[string]string // page name → file in templateFS
	pages map[string]*template.Template
	localeViews
}

// page is what every template receives. Page-specific values are in Data.
type page struct {
	Title   string
	Tenant  string      // the tenant's display name; empty on tenant-neutral pages
	Admin   bool        // admin layout (navigation, logout)
	User    string      // logged-in username
	Super   bool        // the logged-in user is a superuser (users, site settings)
	Perms   store.Perms // what the logged-in user may do (menus, buttons)
	CSRF    string      // token for the page's forms
	Flash   *flashMsg   // message from the previous request
	Crumbs  []crumb
	Data    any
	Refresh int  // seconds after which the page reloads itself (0: never)
	neutral bool // say nothing about the tenant (421)
}

type crumb struct {
	Label string
	URL   string // empty for the current page
}

func parseViews(staticURL func(string) string) (*views, error) {
	funcs := template.FuncMap{
		"static":  staticURL,
		"fieldOf": fieldOf,
		"optFieldOf": func(name, typ, value string, errs map[string]string, help string, max int) formField {
			f := fieldOf(name, fieldLabels[name], value, errs, help, max)
			f.Type = typ
			return f
		},
		"statuses":    func() []string { return store.Statuses },
		"statusLabel": statusLabel,
		// staff, passwords and history
		"fieldLabel": fieldLabel,
		"lines":      func(s string) []string { return strings.Split(s, "\n") },
	}
	for name, f := range localeFuncs(defaultLocale()) { // replaced in each locale's clones
		funcs[name] = f
	}
	// The layout and the partials (files starting with "_") are shared.
	base, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("parse base template: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	v := &views{base: base, files: map[string]string{}, pages: map[string]*template.Template{}}
	for _, name := range names {
		file := path.Base(name)
		if file == "base.html" || strings.HasPrefix(file, "_") {
			continue
		}
		v.files[strings.TrimSuffix(file, ".html")] = name
	}
	for _, name := range append(requiredViews, staffViews...) {
		if v.files[name] == "" {
			return nil, fmt.Errorf("template %s.html is missing", name)
		}
	}
	return v, nil
}

// page returns the parsed page name (nil, nil: no such page). v.mu is
// held.
func (v *views) page(name string) (*template.Template, error) {
	if t := v.pages[name]; t != nil {
		return t, nil
	}
	file := v.files[name]
	if file == "" {
		return nil, nil
	}
	t, err := template.Must(v.base.Clone()).ParseFS(templateFS, file)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path.Base(file), err)
	}
	if t.Lookup("content") == nil {
		return nil, fmt.Errorf("template %s defines no \"content\"", path.Base(file))
	}
	v.pages[name] = t
	return t, nil
}

func defaultLocale() *locale {
	return &locale{lang: i18n.Get(i18n.Default), zone: time.UTC, zoneName: i18n.DefaultZone}
}

// forLocale returns page name of a locale, parsed and cloned on first use
// (nil, nil: no such page).
func (v *views) forLocale(l *locale, name string) (*template.Template, error) {
	key := localeKey{l.lang.Code, l.zoneName}
	v.mu.Lock()
	defer v.mu.Unlock()
	set, ok := v.sets[key]
	if t, ok := set[name]; ok {
		return t, nil
	}
	t, err := v.page(name)
	if t == nil {
		return nil, err
	}
	c, err := t.Clone()
	if err != nil {
		return nil, fmt.Errorf("clone template %s: %w", name, err)
	}
	c.Funcs(localeFuncs(l))
	for _, t := range c.Templates() {
		if t.Tree != nil {
			inlineTranslations(t.Tree.Root, l)
		}
	}
	if !ok {
		if v.sets == nil || len(v.sets) >= maxLocaleSets {
			v.sets = map[localeKey]map[string]*template.Template{}
		}
		set = map[string]*template.Template{}
		v.sets[key] = set
	}
	set[name] = c
	return c, nil
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	loc := s.locale(r)
	t, err := s.views.forLocale(loc, name)
	if err != nil {
		s.log.Error("render: template of the locale", "request_id", stateOf(r).id, "template", name, "err", err)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	if t == nil { // a programming error; parseViews checks the fixed names
		s.log.Error("render: no such template", "request_id", stateOf(r).id, "template", name)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	if !p.neutral {
		p.Tenant = s.current().DisplayName
		if sess := stateOf(r).session; sess != nil {
			p.User = sess.Username
			p.Super = sess.IsSuperuser
			p.Perms = sess.Perms
			if p.CSRF == "" {
				p.CSRF = sess.CSRFToken
			}
		}
		if p.Admin && r.Method == http.MethodGet {
			p.Flash = s.takeFlash(w, r)
		}
	}
	p.Title = loc.T(p.Title)
	for i := range p.Crumbs {
		p.Crumbs[i].Label = loc.T(p.Crumbs[i].Label)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base.html", p); err != nil {
		s.log.Error("render template", "request_id", stateOf(r).id, "template", name, "err", err)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", loc.lang.Code)
	if loc.byHeader { // a cache must not give one visitor's language to another
		w.Header().Add("Vary", "Accept-Language")
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorPage struct {
	Code      int
	Heading   string
	Message   string
	RequestID string // shown for errors people report (disk full)
	Link      string
	LinkTxt   string
}

var errorPages = map[int]errorPage{
	http.StatusBadRequest: {Heading: "Bad request", Message: "The request could not be understood."},
	http.StatusForbidden: {Heading: "Forbidden", Message: "The form you sent could not be verified (CSRF check failed). " +
		"This happens when a page was open for a long time or you logged in or out in another tab. " +
		"Go back, reload the page and try again.", Link: "/admin/", LinkTxt: "Go to the admin site"},
	http.StatusNotFound: {Heading: "Page not found", Message: "We could not find the page you asked for.", Link: "/", LinkTxt: "Go to the home page"},
	http.StatusMethodNotAllowed: {Heading: "Method not allowed", Message: "This address only accepts a form submission. " +
		"To log out, use the “Log out” button.", Link: "/admin/", LinkTxt: "Go to the admin site"},
	http.StatusRequestEntityTooLarge: {Heading: "Upload too large", Message: "The file you sent is larger than this site accepts."},
	http.StatusMisdirectedRequest:    {Heading: "Misdirected request", Message: "This server does not serve the site you asked for."},
	http.StatusInternalServerError:   {Heading: "Server error", Message: "Something went wrong on our side. Please try again in a moment."},
	http.StatusServiceUnavailable:    {Heading: "Service unavailable", Message: "The site is not available right now. Please try again in a moment."},
}

// formField is one labelled input of a form, for the "field" template.
type formField struct {
	Name, Label, Value, Error, Help string
	Max                             int
	Type                            string // optional fields (_record_fields.html): the input's type
}

func fieldOf(name, label, value string, errs map[string]string, help string, max int) formField {
	return formField{Name: name, Label: label, Value: value, Error: errs[name], Help: help, Max: max}
}

// renderError answers with a small, styled error page.
func (s *server) renderError(w http.ResponseWriter, r *http.Request, code int) {
	e, ok := errorPages[code]
	if !ok {
		e = errorPage{Heading: http.StatusText(code)}
	}
	e.Code = code
	e.Heading, e.Message, e.LinkTxt = s.tr(r, e.Heading), s.tr(r, e.Message), s.tr(r, e.LinkTxt)
	p := &page{Title: e.Heading, Data: e, neutral: code == http.StatusMisdirectedRequest}
	s.render(w, r, code, "error", p)
}

// serverError logs the cause (never shown to the visitor) and answers 500,
// or 503 with Retry-After when the school's database was busy (store.IsBusy).
// A request whose client went away is not a server error: it is recorded
// as 499 (nginx's "client closed request") and logged at debug level.
func (s *server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r)
	if r.Context().Err() != nil {
		s.log.Debug("client went away", "request_id", st.id, "route", st.route, "err", err)
		w.WriteHeader(statusClientClosed)
		return
	}
	if store.IsStorageFull(err) {
		s.storageFullPage(w, r, err)
		return
	}
	if store.IsBusy(err) { // another writer of the school held its lock too long
		s.log.Warn("database busy", "request_id", st.id, "route", st.route, "err", err)
		w.Header().Set("Retry-After", "5")
		s.renderError(w, r, http.StatusServiceUnavailable)
		return
	}
	s.log.Error("request failed", "request_id", st.id, "route", st.route, "err", err)
	s.renderError(w, r, http.StatusInternalServerError)
}

// statusClientClosed is recorded for requests whose client disconnected.
const statusClientClosed = 499

func (s *server) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.renderError(w, r, http.StatusMethodNotAllowed)
	}
}

func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusNotFound)
}

// Messages of the admin's 404 page.
const (
	msgAdminNoPage    = "There is no page at this address in the administration. The link may be out of date or mistyped."
	msgAdminNoStudent = "There is no student at this address. The student may have been deleted, or the link is out of date."
)

// handleAdminNotFound answers an unknown admin address inside the admin
// layout (navigation, logout), with a way back.
func (s *server) handleAdminNotFound(w http.ResponseWriter, r *http.Request) {
	s.adminNotFound(w, r, msgAdminNoPage)
}

// adminNotFound is the admin's 404 page with a helpful message.
func (s *server) adminNotFound(w http.ResponseWriter, r *http.Request, msg string) {
	s.render(w, r, http.StatusNotFound, "admin_not_found", &page{
		Title:  "Page not found",
		Admin:  true,
		Crumbs: crumbs("Page not found"),
		Data:   errorPage{Code: http.StatusNotFound, Heading: s.tr(r, "Page not found"), Message: s.tr(r, msg)},
	})
}
