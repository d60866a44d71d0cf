package app

import (
	"net/http"

	"github.com/campus-saas/campus/store"
)

// routes is the one place that lists every URL of the app and the
// middleware guarding it.
//
// Outermost to innermost: observe (request id, log line, metrics, panic
// recovery, security headers) → tenant header check → tenant host check
// (421; the probes and /metrics are exempt) → site routes. Everything under
// /admin/ except the login page goes through adminOnly: a new admin route
// is guarded without anyone remembering to guard it, and each admin route
// says which permission it needs (adminRoutes, guard.go).
func (s *server) routes() http.Handler {
	admin := http.NewServeMux()
	// Every admin URL is in adminRoutes with the permission it needs, and
	// passes the one guard, allow (guard.go): a route cannot be added
	// without saying who may use it.
	for _, rt := range s.adminRoutes() {
		h := s.allow(rt.need, rt.h)
		if rt.label != "" {
			admin.Handle(rt.pattern, s.routeAs(rt.label, h.ServeHTTP))
			continue
		}
		admin.Handle(rt.pattern, s.route(h))
	}
	admin.Handle("/admin/", s.routeAs(routeNotFound, http.HandlerFunc(s.handleAdminNotFound)))

	site := http.NewServeMux()
	site.Handle("GET /{$}", s.route(s.publicGate(http.HandlerFunc(s.handlePublicIndex))))
	site.Handle("GET /static/{file}", s.route(s.static))
	site.Handle("GET /admin/login/{$}", s.route(s.withSession(http.HandlerFunc(s.handleLoginForm))))
	site.Handle("POST /admin/login/{$}", s.route(s.withSession(s.csrfAnonymous(http.HandlerFunc(s.handleLogin)))))
	// A one-time reset link is used without a session (password.go).
	site.Handle("GET /admin/password-reset/{$}", s.route(s.withSession(http.HandlerFunc(s.handleResetForm))))
	site.Handle("POST /admin/password-reset/{$}", s.route(s.withSession(s.csrfAnonymous(http.HandlerFunc(s.handleReset)))))
	site.Handle("/admin/", s.route(s.adminOnly(admin)))
	site.Handle("/", s.routeAs(routeNotFound, http.HandlerFunc(s.handleNotFound)))

	top := http.NewServeMux()
	// Probes and the Prometheus scrape come by IP: no Host check (the
	// tenant header check still applies).
	top.Handle("GET /healthz", s.route(http.HandlerFunc(s.handleHealthz)))
	top.Handle("GET /readyz", s.route(http.HandlerFunc(s.handleReadyz)))
	top.Handle("GET /metrics", s.route(s.handleMetrics()))
	top.Handle("/", s.requireTenantHost(site))

	return s.observe(s.requireTenantHeader(top))
}

// adminRoute is one admin URL, the permission it needs ("" for any
// logged-in user) and, for catch-alls, a fixed route label.
type adminRoute struct {
	pattern string
	need    store.Permission
	h       http.HandlerFunc
	label   string
}

// adminRoutes lists every URL under /admin/ but the login and reset
// pages. Reading a student needs view; each change its own right (an
// import in update mode also change, importNeeds); users,
// groups and settings are the superuser's (every URL under /admin/users/
// and /admin/groups/, known or not).
func (s *server) adminRoutes() []adminRoute {
	const (
		anyone = store.Permission("")
		super  = store.PermSuperuser
	)
	return []adminRoute{
		{"GET /admin/{$}", anyone, s.handleAdminHome, ""},
		{"GET /admin/history/{$}", anyone, s.handleHistory, ""},
		{"GET /admin/history/export/{$}", anyone, s.handleHistoryExport, ""},
		{"GET /admin/password/{$}", anyone, s.handlePasswordForm, ""},
		{"POST /admin/password/{$}", anyone, s.handlePasswordChange, ""},
		{"POST /admin/logout/{$}", anyone, s.handleLogout, ""},
		{"GET /admin/logout/{$}", anyone, s.methodNotAllowed(http.MethodPost), ""},

		{"GET /admin/students/{$}", store.PermView, s.handleStudentList, ""},
		{"GET /admin/students/print/{$}", store.PermView, s.handleStudentsPrint, ""},
		{"GET /admin/students/{id}/change/{$}", store.PermView, s.handleStudentChangeForm, ""},
		{"GET /admin/students/{id}/history/{$}", store.PermView, s.handleStudentHistory, ""},
		{"GET /admin/students/add/{$}", store.PermAdd, s.handleStudentAddForm, ""},
		{"POST /admin/students/add/{$}", store.PermAdd, s.handleStudentAdd, ""},
		{"POST /admin/students/{id}/change/{$}", store.PermChange, s.handleStudentChange, ""},
		{"GET /admin/students/{id}/delete/{$}", store.PermDelete, s.handleStudentDeleteConfirm, ""},
		{"POST /admin/students/{id}/delete/{$}", store.PermDelete, s.handleStudentDelete, ""},
		{"POST /admin/students/delete-selected/{$}", store.PermDelete, s.handleStudentsDeleteSelected, ""},
		{"POST /admin/students/export-selected/{$}", store.PermExport, s.handleStudentsExportSelected, ""},
		{"POST /admin/students/change-status/{$}", store.PermChange, s.handleStudentsChangeStatus, ""},
		{"POST /admin/students/change-class/{$}", store.PermChange, s.handleStudentsChangeClass, ""},
		{"GET /admin/students/export/{$}", store.PermExport, s.handleStudentsExport, ""},
		{"GET /admin/students/import/{$}", store.PermImport, s.handleStudentsImportForm, ""},
		{"POST /admin/students/import/{$}", store.PermImport, s.allowAlso(importNeeds, s.handleStudentsImport), ""},
		{"GET /admin/students/import/{op}/progress/{$}", store.PermImport, s.handleImportProgress, ""},

		{"GET /admin/users/{$}", super, s.handleUserList, ""},
		{"GET /admin/users/add/{$}", super, s.handleUserAddForm, ""},
		{"POST /admin/users/add/{$}", super, s.handleUserAdd, ""},
		{"GET /admin/users/{id}/change/{$}", super, s.handleUserChangeForm, ""},
		{"POST /admin/users/{id}/change/{$}", super, s.handleUserChange, ""},
		{"GET /admin/users/{id}/password/{$}", super, s.handleUserPasswordForm, ""},
		{"POST /admin/users/{id}/password/{$}", super, s.handleUserPassword, ""},
		{"POST /admin/users/{id}/resetlink/{$}", super, s.handleUserResetLink, ""},
		{"POST /admin/users/{id}/unlock/{$}", super, s.handleUserUnlock, ""},
		{"/admin/users/", super, s.handleAdminNotFound, routeNotFound},
		{"GET /admin/groups/{$}", super, s.handleGroupList, ""},
		{"GET /admin/groups/add/{$}", super, s.handleGroupAddForm, ""},
		{"POST /admin/groups/add/{$}", super, s.handleGroupAdd, ""},
		{"GET /admin/groups/{id}/change/{$}", super, s.handleGroupChangeForm, ""},
		{"POST /admin/groups/{id}/change/{$}", super, s.handleGroupChange, ""},
		{"POST /admin/groups/{id}/delete/{$}", super, s.handleGroupDelete, ""},
		{"/admin/groups/", super, s.handleAdminNotFound, routeNotFound},
		{"GET /admin/settings/{$}", super, s.handleSettingsForm, ""},
		{"POST /admin/settings/{$}", super, s.handleSettings, ""},
		{"POST /admin/settings/locale/{$}", super, s.handleLocaleSettings, ""},
	}
}

// adminOnly guards the admin site: the session is loaded; a state-changing
// request must carry the session's CSRF token (403 otherwise, before
// anything else); a page needs a valid session (else the login page).
func (s *server) adminOnly(next http.Handler) http.Handler {
	return s.withSession(s.csrfUnsafe(s.requireAdmin(next)))
}
