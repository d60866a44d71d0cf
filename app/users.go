package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/campus-saas/campus/store"
)

// Users: superusers add, edit and deactivate the school's staff. Every
// /admin/users/ URL needs store.PermSuperuser (routes.go, guard.go), so
// anyone else gets 403 on all of them, whatever the links on the page say.

const usersURL = "/admin/users/"

var usersCrumb = crumb{Label: "Users", URL: usersURL}

func userChangeURL(id string) string { return usersURL + url.PathEscape(id) + "/change/" }

// Flash kinds of this file and of password.go, registered with the others
// (flash.go) here so that the two files do not have to change together.
const (
	flashUserAdded       flashKind = "user_added"
	flashUserChanged     flashKind = "user_changed"
	flashPasswordChanged flashKind = "password_changed"
	flashPasswordReset   flashKind = "password_reset"
)

func init() {
	flashFormats[flashUserAdded] = "The user “%s” was added successfully. They can log in now."
	flashFormats[flashUserChanged] = "The user “%s” was changed successfully."
	flashFormats[flashPasswordChanged] = "Your password was changed. Your other sessions have been logged out."
	flashFormats[flashPasswordReset] = "Your password has been set. You may log in now."
	flashLevels[flashPasswordReset] = "success"
}

// ---- list ----

func (s *server) handleUserList(w http.ResponseWriter, r *http.Request) {
	users, err := s.store.Users(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	choices, err := s.groupChoices(r, nil)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	rows := make([]userRow, len(users))
	for i, u := range users {
		rows[i] = userRow{User: u, Groups: groupNames(choices, u.GroupIDs())}
	}
	s.render(w, r, http.StatusOK, "admin_users", &page{
		Title:  "Users",
		Admin:  true,
		Crumbs: crumbs("Users"),
		Data:   struct{ Users []userRow }{rows},
	})
}

// userRow is a user of the list, with the names of their groups.
type userRow struct {
	store.User
	Groups string
}

// ---- add ----

type userForm struct {
	ID          string // "" when adding
	Username    string
	Email       string
	IsSuperuser bool
	IsActive    bool
	Self        bool // the user edits their own account
	LastLogin   time.Time
	Errors      map[string]string
	// ResetLink is a freshly issued one-time link, shown once.
	ResetLink    string
	ResetExpires time.Time
	// Locks are the user's failed logins and lock-outs (see
	// store.LoginLocks); Unlocked is what the unlock button just lifted.
	Locks    store.LoginLocks
	Unlocked *store.LoginLocks
	Groups   []groupChoice
}

// groupChoice is one group's checkbox on the user form.
type groupChoice struct {
	store.Group
	Checked bool
}

// userGroupsInput are the ticked groups of a form that showed them
// (field groups_shown; none ticked is no group), or nil for a form
// without them (the defaults when adding, unchanged when changing).
func userGroupsInput(r *http.Request) []string {
	if !r.PostForm.Has("groups_shown") {
		return nil
	}
	return append([]string{}, r.PostForm["groups"]...)
}

// groupChoices are every group of the school, those in checked ticked.
func (s *server) groupChoices(r *http.Request, checked []string) ([]groupChoice, error) {
	gs, err := s.store.Groups(r.Context())
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]groupChoice, len(gs))
	for i, g := range gs {
		out[i] = groupChoice{Group: g, Checked: slices.Contains(checked, g.ID)}
	}
	return out, nil
}

// groupNames are the names of ids among choices, for history entries.
func groupNames(choices []groupChoice, ids []string) string {
	var names []string
	for _, c := range choices {
		if slices.Contains(ids, c.ID) {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

var userFieldLabels = map[string]string{
	"username": "Username", "email": "Email address", "password": "Password", "groups": "Groups",
}

// userErrors turns the store's messages into sentences, in the page's
// language.
func userErrors(l *locale, fe store.FieldErrors) map[string]string {
	out := map[string]string{}
	for field, msg := range fe {
		switch {
		case msg == "is required":
			msg = l.T(msgRequired)
		case strings.HasPrefix(msg, "is ") || strings.HasPrefix(msg, "must "):
			label := userFieldLabels[field]
			if label == "" {
				label = "This field"
			}
			msg = l.T("%s %s", l.T(label), l.storeMsg(msg)) + "."
		default: // "“x” is not a date: …", "2030-01-01 is in the future"
			msg = l.storeMsg(msg)
		}
		out[field] = msg
	}
	return out
}

func (s *server) renderUserForm(w http.ResponseWriter, r *http.Request, status int, f userForm) {
	title, crumbLabel := "Add user", "Add user"
	if f.ID != "" {
		title, crumbLabel = "Change user", f.Username
	}
	s.render(w, r, status, "admin_user_form", &page{
		Title:  title,
		Admin:  true,
		Crumbs: crumbs(crumbLabel, usersCrumb),
		Data:   f,
	})
}

func (s *server) handleUserAddForm(w http.ResponseWriter, r *http.Request) {
	groups, err := s.groupChoices(r, []string{store.GroupStaff})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.renderUserForm(w, r, http.StatusOK, userForm{IsActive: true, Groups: groups})
}

func (s *server) handleUserAdd(w http.ResponseWriter, r *http.Request) {
	f := userForm{
		Username:    strings.TrimSpace(r.PostForm.Get("username")),
		Email:       strings.TrimSpace(r.PostForm.Get("email")),
		IsSuperuser: r.PostForm.Get("is_superuser") == "on",
		IsActive:    true,
	}
	p1, p2 := r.PostForm.Get("password1"), r.PostForm.Get("password2")
	groups := userGroupsInput(r)
	checked := groups
	if checked == nil && !f.IsSuperuser {
		checked = []string{store.GroupStaff}
	}
	var err error
	if f.Groups, err = s.groupChoices(r, checked); err != nil {
		s.serverError(w, r, err)
		return
	}
	if p1 != p2 || p1 == "" {
		// Every error at once: the two passwords, and whatever else
		// the store would refuse.
		f.Errors = userErrors(s.locale(r), store.ValidateSuperuser(f.Username, f.Email, p1))
		delete(f.Errors, "password")
		checkNewPassword(f.Errors, "password1", "password2", p1, p2, f.Username, f.Email)
		s.renderUserForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	u, err := s.store.CreateUser(r.Context(), store.NewUser{Username: f.Username, Email: f.Email, Password: p1,
		IsSuperuser: f.IsSuperuser, Groups: groups})
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrUserExists):
		f.Errors = map[string]string{"username": "A user with that username already exists."}
	case errors.As(err, &fe):
		f.Errors = userErrors(s.locale(r), fe)
		if m, ok := f.Errors["password"]; ok {
			delete(f.Errors, "password")
			f.Errors["password1"] = m
		}
	case err != nil:
		s.serverError(w, r, fmt.Errorf("create user: %w", err))
		return
	}
	if f.Errors != nil {
		s.renderUserForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	entry := store.UserAdded(actor(r), u)
	if names := groupNames(f.Groups, u.GroupIDs()); names != "" {
		entry.Changes = append(entry.Changes, store.FieldChange{Field: "groups", After: names})
	}
	s.record(r, entry)
	s.log.Info("user added", "request_id", stateOf(r).id, "user_id", u.ID, "by", stateOf(r).session.UserID, "superuser", u.IsSuperuser)
	s.setFlash(w, r, flashUserAdded, u.Username)
	http.Redirect(w, r, usersURL, http.StatusSeeOther)
}

// ---- change ----

// user loads the user named in the URL; its error is answered.
func (s *server) user(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	u, err := s.store.UserByID(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound)
		return u, false
	case err != nil:
		s.serverError(w, r, fmt.Errorf("load user: %w", err))
		return u, false
	}
	return u, true
}

// userFormOf is the form of u; a failure to list the groups is answered
// (false).
func (s *server) userFormOf(w http.ResponseWriter, r *http.Request, u store.User) (userForm, bool) {
	groups, err := s.groupChoices(r, u.GroupIDs())
	if err != nil {
		s.serverError(w, r, err)
		return userForm{}, false
	}
	return userForm{ID: u.ID, Username: u.Username, Email: u.Email, IsSuperuser: u.IsSuperuser,
		IsActive: u.IsActive, Self: u.ID == stateOf(r).session.UserID, LastLogin: u.LastLogin, Groups: groups}, true
}

func (s *server) handleUserChangeForm(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	f, ok := s.userFormOf(w, r, u)
	if !ok {
		return
	}
	locks, err := s.store.LoginLocks(r.Context(), u.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, fmt.Errorf("read login locks: %w", err))
		return
	}
	f.Locks = locks
	s.renderUserForm(w, r, http.StatusOK, f)
}

// handleUserUnlock lifts every login lock-out that stops the user (as
// `campus manage T unlock USER` does) and shows what it lifted.
func (s *server) handleUserUnlock(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	f, ok := s.userFormOf(w, r, u)
	if !ok {
		return
	}
	lifted, err := s.store.Unlock(r.Context(), u.Username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("unlock user: %w", err))
		return
	}
	s.log.Info("user unlocked", "request_id", stateOf(r).id, "user_id", u.ID, "by", stateOf(r).session.UserID,
		"addresses", len(lifted.Addresses), "was_locked", lifted.Locked())
	f.Unlocked = &lifted
	s.renderUserForm(w, r, http.StatusOK, f)
}

func (s *server) handleUserChange(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	f, ok := s.userFormOf(w, r, u)
	if !ok {
		return
	}
	f.Email = strings.TrimSpace(r.PostForm.Get("email"))
	f.IsSuperuser = r.PostForm.Get("is_superuser") == "on"
	f.IsActive = r.PostForm.Get("is_active") == "on"
	groups := userGroupsInput(r)
	for i := range f.Groups {
		if groups != nil {
			f.Groups[i].Checked = slices.Contains(groups, f.Groups[i].ID)
		}
	}
	// Nobody locks themselves out: a superuser keeps their own role and
	// stays active (another superuser can change them).
	if f.Self && (!f.IsSuperuser || !f.IsActive) {
		f.Errors = map[string]string{"is_superuser": "You cannot remove your own superuser status or deactivate yourself; ask another superuser."}
		f.IsSuperuser, f.IsActive = u.IsSuperuser, u.IsActive
		s.renderUserForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	nu, err := s.store.UpdateUser(r.Context(), u.ID, store.UserChange{Email: f.Email, IsSuperuser: f.IsSuperuser, IsActive: f.IsActive, Groups: groups})
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound)
		return
	case errors.As(err, &fe):
		f.Errors = userErrors(s.locale(r), fe)
		s.renderUserForm(w, r, http.StatusUnprocessableEntity, f)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("update user: %w", err))
		return
	}
	entry := store.UserChanged(actor(r), u, nu)
	if before, after := groupNames(f.Groups, u.GroupIDs()), groupNames(f.Groups, nu.GroupIDs()); before != after {
		entry.Changes = append(entry.Changes, store.FieldChange{Field: "groups", Before: before, After: after})
	}
	s.record(r, entry)
	s.log.Info("user changed", "request_id", stateOf(r).id, "user_id", nu.ID, "by", stateOf(r).session.UserID,
		"superuser", nu.IsSuperuser, "active", nu.IsActive)
	s.setFlash(w, r, flashUserChanged, nu.Username)
	http.Redirect(w, r, usersURL, http.StatusSeeOther)
}

// handleUserResetLink issues a one-time password reset link for the user
// and shows it once, for the superuser to pass on.
func (s *server) handleUserResetLink(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	f, ok := s.userFormOf(w, r, u)
	if !ok {
		return
	}
	token, expires, err := s.store.CreateResetToken(r.Context(), u.Username, 0)
	switch {
	case errors.Is(err, store.ErrNotFound):
		f.Errors = map[string]string{"reset": "An inactive user cannot get a reset link; make the user active first."}
		s.renderUserForm(w, r, http.StatusUnprocessableEntity, f)
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("issue reset link: %w", err))
		return
	}
	s.record(r, store.ResetLinkIssued(actor(r), u))
	s.log.Info("password reset link issued", "request_id", stateOf(r).id, "user_id", u.ID, "by", stateOf(r).session.UserID)
	f.ResetLink, f.ResetExpires = s.siteURL(r, ResetPath(token)), expires
	s.renderUserForm(w, r, http.StatusOK, f)
}

// ResetPath is the path of a password reset link; the token goes in the
// query, which no request log records.
func ResetPath(token string) string {
	return resetURL + "?" + url.Values{"token": {token}}.Encode()
}

// siteURL is an absolute URL of path on the tenant's primary host, with
// the scheme and port the request came in on (the proxy's).
func (s *server) siteURL(r *http.Request, path string) string {
	scheme := "http"
	if s.secureCookie(r) {
		scheme = "https"
	}
	host := s.current().PrimaryHost
	if _, port, err := net.SplitHostPort(r.Host); err == nil && port != "" {
		host = net.JoinHostPort(host, port)
	}
	return scheme + "://" + host + path
}
