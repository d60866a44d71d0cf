package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

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
	// OpLink is the history page filtered to the entry's operation
	// (import, bulk change or delete), where the viewer may see it.
	OpLink string
	// Ref and Detail are set on a student's page for an import that
	// created or changed it: how ("Created by import #5"), and the
	// import's file, mode and rows, in the page's language.
	Ref, Detail string
}

func historyRows(l *locale, entries []store.HistoryEntry) []historyRow {
	rows := make([]historyRow, len(entries))
	for i, e := range entries {
		rows[i] = historyRow{HistoryEntry: e, Object: historyObject(l, e), Detail: importDetail(l, e)}
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

// opLink is the history page of e's operation, where r's user may see
// it there: a superuser every entry, anyone else their own
// (parseHistoryQuery).
func opLink(r *http.Request, e store.HistoryEntry) string {
	sess := stateOf(r).session
	if e.Op == 0 || sess == nil || !sess.IsSuperuser && !strings.EqualFold(e.Username, sess.Username) {
		return ""
	}
	return historyURL + "?op=" + strconv.FormatInt(e.Op, 10)
}

// opRow is the row of a student's page for an operation that created or
// changed it (store.StudentOperations).
func opRow(r *http.Request, l *locale, o store.StudentOp) historyRow {
	e := o.Entry
	row := historyRow{HistoryEntry: e, OpLink: opLink(r, e)}
	row.Changes = o.Changes // what the import changed of this student (none recorded for a creation)
	known := e.Action != "" // else only the operation's number is known
	switch {
	case o.Created && known:
		row.Ref = l.T("Created by import #%d", e.Op)
	case o.Created:
		row.Ref = l.T("Created by operation #%d", e.Op)
	case o.Last && known:
		row.Ref = l.T("Last changed by import #%d", e.Op)
	case o.Last:
		row.Ref = l.T("Last changed by operation #%d", e.Op)
	default:
		row.Ref = l.T("Changed by import #%d", e.Op)
	}
	if row.Detail = importDetail(l, e); row.Detail == "" && known {
		row.Detail = l.T("%d rows", e.Count) // an import from before files and modes were recorded
	}
	return row
}

// importDetail words an import's file, mode and rows ("" for an entry
// without a mode: not an import, or one from before they were recorded).
func importDetail(l *locale, e store.HistoryEntry) string {
	if e.Action != store.ActionImport || e.Mode == "" {
		return ""
	}
	mode := l.T("add new students")
	if e.Mode == string(store.ImportUpdate) {
		mode = l.T("add and update")
	}
	file := e.File
	if file == "" {
		file = l.T("(file name not recorded)")
	}
	return l.T("File %s, mode %s, %d rows", file, mode, e.Count)
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
	added := slices.ContainsFunc(entries, func(e store.HistoryEntry) bool { return e.Action == store.ActionAdd })
	ops, err := s.store.StudentOperations(r.Context(), id, !added)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	l := s.locale(r)
	d := studentHistory{ID: id, Entries: historyRows(l, entries)}
	for i := range d.Entries {
		d.Entries[i].OpLink = opLink(r, d.Entries[i].HistoryEntry)
	}
	for _, o := range ops {
		d.Entries = append(d.Entries, opRow(r, l, o))
	}
	slices.SortStableFunc(d.Entries, func(a, b historyRow) int { return a.At.Compare(b.At) })
	st, err := s.store.Student(r.Context(), id)
	switch {
	case err == nil:
		d.Exists, d.Label = true, studentLabel(st)
	case !errors.Is(err, store.ErrNotFound):
		s.serverError(w, r, fmt.Errorf("load student %d: %w", id, err))
		return
	case len(d.Entries) == 0:
		s.renderError(w, r, http.StatusNotFound)
		return
	case len(entries) == 0:
		d.Label = "#" + strconv.FormatInt(id, 10)
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
