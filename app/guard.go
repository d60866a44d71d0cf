package app

import (
	"net/http"

	"github.com/campus-saas/campus/store"
)

// The one permission guard of the admin site. Every admin route names the
// permission it needs (adminRoutes in routes.go) and passes through allow,
// after adminOnly has loaded the session (read with the user's groups on
// every request, so a change of rights applies at once) and checked CSRF.
// Pages show only what the user may do (page.Perms), but the guard is
// what refuses: a hidden link typed by hand gets 403 all the same.

// allow refuses (403) a user whose permissions lack need; "" lets every
// logged-in user through.
func (s *server) allow(need store.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !can(r, need) {
			s.forbidden(w, r, need)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowAlso is allow for a second permission that depends on the form:
// needOf names it ("" for none). The route's own permission is checked
// first, by the route table.
func (s *server) allowAlso(needOf func(*http.Request) store.Permission, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.allow(needOf(r), next).ServeHTTP(w, r)
	}
}

// importNeeds: an import in update mode changes existing students, so it
// needs change_student as well as import_student (preview and
// confirmation alike: both post the mode).
func importNeeds(r *http.Request) store.Permission {
	if r.PostForm.Get("mode") == string(store.ImportUpdate) {
		return store.PermChange
	}
	return ""
}

// can reports whether the request's user holds p.
func can(r *http.Request, p store.Permission) bool {
	sess := stateOf(r).session
	return sess != nil && sess.Perms.Has(p)
}

// forbidden answers a user who lacks the permission need.
func (s *server) forbidden(w http.ResponseWriter, r *http.Request, need store.Permission) {
	st := stateOf(r)
	userID := ""
	if st.session != nil {
		userID = st.session.UserID
	}
	s.log.Info("permission denied", "request_id", st.id, "route", st.route, "user_id", userID, "needs", string(need))
	msg := "Only superusers can manage users, groups and site settings. Ask a superuser of your school if you need this."
	if need != store.PermSuperuser {
		msg = s.tr(r, "You do not have the permission “%s”. Ask a superuser of your school to add you to a group that has it.", s.tr(r, need.Label()))
	}
	s.render(w, r, http.StatusForbidden, "error", &page{Title: "Permission denied", Admin: true, Data: errorPage{
		Code:    http.StatusForbidden,
		Heading: s.tr(r, "Permission denied"),
		Message: s.tr(r, msg),
		Link:    "/admin/", LinkTxt: s.tr(r, "Go to the admin home"),
	}})
}
