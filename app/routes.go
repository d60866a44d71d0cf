package app

import "net/http"

// routes is the one place that lists every URL of the app and the
// middleware guarding it.
//
// Outermost to innermost: observe (request id, log line, metrics, panic
// recovery, security headers) → tenant header check → tenant host check
// (421; the probes and /metrics are exempt) → site routes. Everything under
// /admin/ except the login page goes through adminOnly: a new admin route
// is guarded without anyone remembering to guard it.
func (s *server) routes() http.Handler {
	admin := http.NewServeMux()
	// Admin home, history, own password, and users (superusers only: every
	// /admin/users/ URL, known or not, goes through superuserOnly).
	admin.Handle("GET /admin/{$}", s.route(http.HandlerFunc(s.handleAdminHome)))
	admin.Handle("GET /admin/students/{id}/history/{$}", s.route(http.HandlerFunc(s.handleStudentHistory)))
	admin.Handle("GET /admin/password/{$}", s.route(http.HandlerFunc(s.handlePasswordForm)))
	admin.Handle("POST /admin/password/{$}", s.route(http.HandlerFunc(s.handlePasswordChange)))
	users := http.NewServeMux()
	users.Handle("GET /admin/users/{$}", s.route(http.HandlerFunc(s.handleUserList)))
	users.Handle("GET /admin/users/add/{$}", s.route(http.HandlerFunc(s.handleUserAddForm)))
	users.Handle("POST /admin/users/add/{$}", s.route(http.HandlerFunc(s.handleUserAdd)))
	users.Handle("GET /admin/users/{id}/change/{$}", s.route(http.HandlerFunc(s.handleUserChangeForm)))
	users.Handle("POST /admin/users/{id}/change/{$}", s.route(http.HandlerFunc(s.handleUserChange)))
	users.Handle("POST /admin/users/{id}/resetlink/{$}", s.route(http.HandlerFunc(s.handleUserResetLink)))
	users.Handle("POST /admin/users/{id}/unlock/{$}", s.route(http.HandlerFunc(s.handleUserUnlock)))
	users.Handle("/admin/users/", s.routeAs(routeNotFound, http.HandlerFunc(s.handleAdminNotFound)))
	admin.Handle("/admin/users/", s.route(s.superuserOnly(users)))

	admin.Handle("POST /admin/logout/{$}", s.route(http.HandlerFunc(s.handleLogout)))
	admin.Handle("GET /admin/logout/{$}", s.route(s.methodNotAllowed(http.MethodPost)))
	admin.Handle("GET /admin/students/{$}", s.route(http.HandlerFunc(s.handleStudentList)))
	admin.Handle("GET /admin/students/add/{$}", s.route(http.HandlerFunc(s.handleStudentAddForm)))
	admin.Handle("POST /admin/students/add/{$}", s.route(http.HandlerFunc(s.handleStudentAdd)))
	admin.Handle("GET /admin/students/{id}/change/{$}", s.route(http.HandlerFunc(s.handleStudentChangeForm)))
	admin.Handle("POST /admin/students/{id}/change/{$}", s.route(http.HandlerFunc(s.handleStudentChange)))
	admin.Handle("GET /admin/students/{id}/delete/{$}", s.route(http.HandlerFunc(s.handleStudentDeleteConfirm)))
	admin.Handle("POST /admin/students/{id}/delete/{$}", s.route(http.HandlerFunc(s.handleStudentDelete)))
	admin.Handle("POST /admin/students/delete-selected/{$}", s.route(http.HandlerFunc(s.handleStudentsDeleteSelected)))
	admin.Handle("GET /admin/students/export/{$}", s.route(http.HandlerFunc(s.handleStudentsExport)))
	admin.Handle("GET /admin/students/import/{$}", s.route(http.HandlerFunc(s.handleStudentsImportForm)))
	admin.Handle("POST /admin/students/import/{$}", s.route(http.HandlerFunc(s.handleStudentsImport)))
	// Site settings: superusers only, like users.
	admin.Handle("GET /admin/settings/{$}", s.route(s.superuserOnly(http.HandlerFunc(s.handleSettingsForm))))
	admin.Handle("POST /admin/settings/{$}", s.route(s.superuserOnly(http.HandlerFunc(s.handleSettings))))
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

// adminOnly guards the admin site: the session is loaded; a state-changing
// request must carry the session's CSRF token (403 otherwise, before
// anything else); a page needs a valid session (else the login page).
func (s *server) adminOnly(next http.Handler) http.Handler {
	return s.withSession(s.csrfUnsafe(s.requireAdmin(next)))
}
