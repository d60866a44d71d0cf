package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/campus-saas/campus/store"
)

// The admin home (what the user can manage, recent actions) and the
// history of students. Entries are written by the student handlers
// through record, after the change succeeded.

// staffViews are the pages of users.go, password.go and this file.
var staffViews = []string{"admin_home", "admin_users", "admin_user_form", "admin_password", "admin_reset", "admin_history"}

// recentActions is how many entries the admin home lists.
const recentActions = 10

// actor is the logged-in user, for history entries.
func actor(r *http.Request) store.Actor {
	sess := stateOf(r).session
	if sess == nil { // the admin routes always have one; never record "nobody"
		return store.Actor{Username: "(unknown)"}
	}
	return store.Actor{UserID: sess.UserID, Username: sess.Username}
}

// record stores history entries. The change is already made, so a failure
// cannot undo it: it is logged as an error (with what was lost) and the
// request goes on. A client that goes away meanwhile does not stop it.
func (s *server) record(r *http.Request, entries ...store.HistoryEntry) {
	if err := s.store.RecordHistory(context.WithoutCancel(r.Context()), entries...); err != nil {
		s.log.Error("history entry lost", "request_id", stateOf(r).id, "route", stateOf(r).route,
			"entries", len(entries), "action", string(entries[0].Action), "err", err)
	}
}

// historyRow is an entry ready for a page.
type historyRow struct {
	store.HistoryEntry
	Object string // what the entry is about, in the page's language
	Link   string // the student's change page, for entries of live students
}

func historyRows(l *locale, entries []store.HistoryEntry) []historyRow {
	rows := make([]historyRow, len(entries))
	for i, e := range entries {
		rows[i] = historyRow{HistoryEntry: e, Object: historyObject(l, e)}
		switch {
		case e.TargetUserID != "":
			rows[i].Link = userChangeURL(e.TargetUserID)
		case e.TargetGroupID != "" && e.Action != store.ActionDelete:
			rows[i].Link = groupChangeURL(e.TargetGroupID)
		case e.StudentID != 0 && (e.Action == store.ActionAdd || e.Action == store.ActionChange):
			rows[i].Link = changeURL(e.StudentID)
		}
	}
	return rows
}

// historyObject words what an entry is about in the page's language: a
// student's name as it is; "user alice", "group Teachers", "12 students"
// and an interrupted operation's description (stored in English,
// store.ValueFormats) translated.
func historyObject(l *locale, e store.HistoryEntry) string {
	if e.StudentID != 0 {
		return e.Object
	}
	return l.storeMsg(e.Object)
}

// fieldLabel names a student field for people.
func fieldLabel(field string) string {
	if l, ok := fieldLabels[field]; ok {
		return l
	}
	return field
}

type homeData struct {
	Superuser bool
	Recent    []historyRow
}

// handleAdminHome shows what the user may manage and the recent actions:
// a superuser's everybody's (students, users, groups), anyone else's
// only their own ("My actions", as Django's admin).
func (s *server) handleAdminHome(w http.ResponseWriter, r *http.Request) {
	sess := stateOf(r).session
	superuser := sess.IsSuperuser
	f := store.HistoryFilter{Accounts: superuser}
	if !superuser {
		f.Username = sess.Username
	}
	recent, err := s.store.LatestHistory(r.Context(), f, recentActions)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "admin_home", &page{
		Title: "Site administration",
		Admin: true,
		Data:  homeData{Superuser: superuser, Recent: historyRows(s.locale(r), recent)},
	})
}

type studentHistory struct {
	ID      int64
	Label   string
	Exists  bool
	Entries []historyRow
}

// handleStudentHistory lists what happened to one student, oldest first.
// A deleted student's history stays readable here (who deleted it, and
// what it was).
func (s *server) handleStudentHistory(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.renderError(w, r, http.StatusNotFound)
		return
	}
	entries, err := s.store.StudentHistory(r.Context(), id)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := studentHistory{ID: id, Entries: historyRows(s.locale(r), entries)}
	st, err := s.store.Student(r.Context(), id)
	switch {
	case err == nil:
		d.Exists, d.Label = true, studentLabel(st)
	case !errors.Is(err, store.ErrNotFound):
		s.serverError(w, r, fmt.Errorf("load student %d: %w", id, err))
		return
	case len(entries) == 0:
		s.renderError(w, r, http.StatusNotFound)
		return
	default:
		d.Label = entries[len(entries)-1].Object
	}
	links := []crumb{studentsCrumb}
	if d.Exists {
		links = append(links, crumb{Label: d.Label, URL: changeURL(id)})
	}
	s.render(w, r, http.StatusOK, "admin_history", &page{
		Title:  "Change history",
		Admin:  true,
		Crumbs: crumbs("History", links...),
		Data:   d,
	})
}
