package app

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/campus-saas/campus/store"
)

// Groups, as in Django's admin: a superuser names a group and ticks its
// permissions on students; users get their rights from their groups
// (store/permissions.go). The built-in groups (Staff, Viewer) are shown
// but cannot be changed or deleted. Every /admin/groups/ URL needs
// store.PermSuperuser (routes.go).

const groupsURL = "/admin/groups/"

var groupsCrumb = crumb{Label: "Groups", URL: groupsURL}

func groupChangeURL(id string) string { return groupsURL + url.PathEscape(id) + "/change/" }

const (
	flashGroupAdded   flashKind = "group_added"
	flashGroupChanged flashKind = "group_changed"
	flashGroupDeleted flashKind = "group_deleted"
)

func init() {
	flashFormats[flashGroupAdded] = "The group “%s” was added successfully."
	flashFormats[flashGroupChanged] = "The group “%s” was changed successfully."
	flashFormats[flashGroupDeleted] = "The group “%s” was deleted successfully."
	staffViews = append(staffViews, "admin_groups", "admin_group_form")
}

type groupRow struct {
	store.Group
	Members int
}

func (s *server) handleGroupList(w http.ResponseWriter, r *http.Request) {
	groups, err := s.store.Groups(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	members, err := s.store.GroupMembers(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	rows := make([]groupRow, len(groups))
	for i, g := range groups {
		rows[i] = groupRow{Group: g, Members: members[g.ID]}
	}
	s.render(w, r, http.StatusOK, "admin_groups", &page{
		Title: "Groups", Admin: true, Crumbs: crumbs("Groups"),
		Data: struct{ Groups []groupRow }{rows},
	})
}

type permChoice struct {
	Perm    store.Permission
	Checked bool
}

type groupForm struct {
	ID      string // "" when adding
	Name    string
	BuiltIn bool
	Perms   []permChoice
	Errors  map[string]string
}

func newGroupForm(g store.Group) groupForm {
	f := groupForm{ID: g.ID, Name: g.Name, BuiltIn: g.BuiltIn}
	for _, p := range store.StudentPermissions {
		f.Perms = append(f.Perms, permChoice{Perm: p, Checked: slices.Contains(g.Permissions, p)})
	}
	return f
}

func (s *server) renderGroupForm(w http.ResponseWriter, r *http.Request, status int, f groupForm) {
	title, label := "Add group", "Add group"
	if f.ID != "" {
		title, label = "Change group", f.Name
	}
	s.render(w, r, status, "admin_group_form", &page{
		Title: title, Admin: true, Crumbs: crumbs(label, groupsCrumb), Data: f,
	})
}

// groupInput is the posted name and permissions.
func groupInput(r *http.Request) (string, []store.Permission) {
	var perms []store.Permission
	for _, p := range r.PostForm["permissions"] {
		perms = append(perms, store.Permission(p))
	}
	return strings.TrimSpace(r.PostForm.Get("name")), perms
}

// groupErrors turns the store's messages into sentences, in the page's
// language.
func groupErrors(l *locale, err error) (map[string]string, bool) {
	var fe store.FieldErrors
	switch {
	case errors.Is(err, store.ErrGroupExists):
		return map[string]string{"name": l.T("A group with that name already exists.")}, true
	case errors.As(err, &fe):
		out := map[string]string{}
		for field, msg := range fe {
			if msg == "is required" {
				out[field] = l.T(msgRequired)
				continue
			}
			label := "Name"
			if field == "permissions" {
				label = "Permissions"
			}
			out[field] = l.T("%s %s", l.T(label), l.storeMsg(msg)) + "."
		}
		return out, true
	}
	return nil, false
}

func (s *server) handleGroupAddForm(w http.ResponseWriter, r *http.Request) {
	s.renderGroupForm(w, r, http.StatusOK, newGroupForm(store.Group{}))
}

func (s *server) handleGroupAdd(w http.ResponseWriter, r *http.Request) {
	name, perms := groupInput(r)
	g, err := s.store.CreateGroup(r.Context(), name, perms)
	if errs, ok := groupErrors(s.locale(r), err); ok {
		f := newGroupForm(store.Group{Name: name, Permissions: perms})
		f.Errors = errs
		s.renderGroupForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if err != nil {
		s.serverError(w, r, fmt.Errorf("create group: %w", err))
		return
	}
	s.record(r, store.GroupAdded(actor(r), g))
	s.log.Info("group added", "request_id", stateOf(r).id, "group_id", g.ID, "by", stateOf(r).session.UserID)
	s.setFlash(w, r, flashGroupAdded, g.Name)
	http.Redirect(w, r, groupsURL, http.StatusSeeOther)
}

// group loads the group named in the URL; its error is answered.
func (s *server) group(w http.ResponseWriter, r *http.Request) (store.Group, bool) {
	g, err := s.store.GroupByID(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.adminNotFound(w, r, msgAdminNoPage)
		return g, false
	case err != nil:
		s.serverError(w, r, fmt.Errorf("load group: %w", err))
		return g, false
	}
	return g, true
}

func (s *server) handleGroupChangeForm(w http.ResponseWriter, r *http.Request) {
	if g, ok := s.group(w, r); ok {
		s.renderGroupForm(w, r, http.StatusOK, newGroupForm(g))
	}
}

func (s *server) handleGroupChange(w http.ResponseWriter, r *http.Request) {
	before, ok := s.group(w, r)
	if !ok {
		return
	}
	name, perms := groupInput(r)
	g, err := s.store.UpdateGroup(r.Context(), before.ID, name, perms)
	if errors.Is(err, store.ErrBuiltInGroup) {
		f := newGroupForm(before)
		f.Errors = map[string]string{"name": "Built-in groups cannot be changed; add a group of your own."}
		s.renderGroupForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if errs, ok := groupErrors(s.locale(r), err); ok {
		f := newGroupForm(store.Group{ID: before.ID, Name: name, Permissions: perms})
		f.Errors = errs
		s.renderGroupForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if err != nil {
		s.serverError(w, r, fmt.Errorf("update group: %w", err))
		return
	}
	s.record(r, store.GroupChanged(actor(r), before, g))
	s.log.Info("group changed", "request_id", stateOf(r).id, "group_id", g.ID, "by", stateOf(r).session.UserID)
	s.setFlash(w, r, flashGroupChanged, g.Name)
	http.Redirect(w, r, groupsURL, http.StatusSeeOther)
}

func (s *server) handleGroupDelete(w http.ResponseWriter, r *http.Request) {
	g, ok := s.group(w, r)
	if !ok {
		return
	}
	err := s.store.DeleteGroup(r.Context(), g.ID)
	if errors.Is(err, store.ErrBuiltInGroup) {
		f := newGroupForm(g)
		f.Errors = map[string]string{"name": "Built-in groups cannot be deleted."}
		s.renderGroupForm(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if errors.Is(err, store.ErrNotFound) { // deleted meanwhile
		s.adminNotFound(w, r, msgAdminNoPage)
		return
	}
	if err != nil {
		s.serverError(w, r, fmt.Errorf("delete group: %w", err))
		return
	}
	s.record(r, store.GroupDeleted(actor(r), g))
	s.log.Info("group deleted", "request_id", stateOf(r).id, "group_id", g.ID, "by", stateOf(r).session.UserID)
	s.setFlash(w, r, flashGroupDeleted, g.Name)
	http.Redirect(w, r, groupsURL, http.StatusSeeOther)
}
