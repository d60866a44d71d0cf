package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The history page (/admin/history/): entries chosen by who, what and
// when, a page at a time, and the entries about groups of permissions.

// Entries about groups use the actions add, change and delete, like
// students and users, with TargetGroupID set.

// HistoryFilter selects entries. Zero values select everything but the
// entries about user accounts and groups (Accounts: superusers only).
type HistoryFilter struct {
	Username string    // who ("" anybody), case-insensitive
	Action   Action    // what ("" any)
	From     time.Time // at or after (zero: no bound)
	Until    time.Time // before (zero: no bound)
	Accounts bool      // also entries about users and groups
	Op       int64     // only the entries of this operation (0: any)
	// Zone is the zone ExportHistoryWhere's CSV writes times in, with
	// their offset (nil: UTC).
	Zone *time.Location
}

func (f HistoryFilter) bson() bson.D {
	filter := bson.D{}
	if !f.Accounts {
		filter = append(filter,
			bson.E{Key: "target_user_id", Value: d("$exists", false)},
			bson.E{Key: "target_group_id", Value: d("$exists", false)})
	}
	if f.Username != "" {
		// Usernames are stored as typed and compared case-insensitively
		// everywhere else; the command line's name is fixed.
		filter = append(filter, bson.E{Key: "username", Value: d("$in", usernameSpellings(f.Username))})
	}
	if f.Action != "" {
		filter = append(filter, bson.E{Key: "action", Value: string(f.Action)})
	}
	if f.Op != 0 {
		filter = append(filter, bson.E{Key: "op", Value: f.Op})
	}
	at := bson.D{}
	if !f.From.IsZero() {
		at = append(at, bson.E{Key: "$gte", Value: f.From.UTC()})
	}
	if !f.Until.IsZero() {
		at = append(at, bson.E{Key: "$lt", Value: f.Until.UTC()})
	}
	if len(at) > 0 {
		filter = append(filter, bson.E{Key: "at", Value: at})
	}
	return filter
}

// usernameSpellings are the spellings of a username as history may hold
// it: as given, and lower-case (usernames are unique regardless of case,
// and kept as first typed).
func usernameSpellings(u string) []string {
	u = strings.TrimSpace(u)
	if l := strings.ToLower(u); l != u {
		return []string{u, l}
	}
	return []string{u}
}

// HistoryPage is one page of entries, newest first.
type HistoryPage struct {
	Entries []HistoryEntry
	Total   int64
	Page    int
	Pages   int
	PerPage int
	// Counted is false where the entries were not counted (FerretDB, a
	// page before the end: historychain.go): Total and Pages are then
	// unknown (0) and More says whether a next page exists.
	Counted bool
	More    bool
}

// MaxHistoryPerPage bounds a page of history.
const MaxHistoryPerPage = 200

// FindHistory returns page (1-based; past the end: the last) of the
// entries f selects, perPage a page (default 50, at most 200).
//
// On MongoDB that is a count and a find over the indexes. Where the read
// model is used (FerretDB, where a sorted query reads the whole
// collection) the entries up to the page come from the history chain by
// `_id` look-ups (historychain.go), not counted unless the read gets to
// the end.
func (s *Store) FindHistory(ctx context.Context, f HistoryFilter, page, perPage int) (HistoryPage, error) {
	if perPage <= 0 {
		perPage = 50
	}
	perPage = min(perPage, MaxHistoryPerPage)
	page = max(page, 1)
	v, err := s.opsView(ctx)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("read history: %w", err)
	}
	if s.useModel(ctx) {
		return s.chainPage(ctx, f, v, page, perPage)
	}
	filter := v.historyFilter(f.bson()) // entries of operations not committed are not there yet
	total, err := s.col(colHistory).CountDocuments(ctx, filter)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("count history: %w", err)
	}
	out := newHistoryPage(total, page, perPage)
	o := options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).
		SetSkip(int64((out.Page - 1) * perPage)).SetLimit(int64(perPage))
	cur, err := s.col(colHistory).Find(ctx, filter, o)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("read history: %w", err)
	}
	if err := cur.All(ctx, &out.Entries); err != nil {
		return HistoryPage{}, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// newHistoryPage is an empty page of total entries, page clamped to
// those there are.
func newHistoryPage(total int64, page, perPage int) HistoryPage {
	pages := max(1, int((total+int64(perPage)-1)/int64(perPage)))
	return HistoryPage{Entries: []HistoryEntry{}, Total: total, Page: min(page, pages), Pages: pages, PerPage: perPage, Counted: true, More: min(page, pages) < pages}
}

// chainPage is FindHistory from the history chain (historychain.go):
// the entries up to the page and one more are read, not counted; Total
// and Pages are known (Counted) once the read got to the end.
func (s *Store) chainPage(ctx context.Context, f HistoryFilter, v OpsView, page, perPage int) (HistoryPage, error) {
	skip := (page - 1) * perPage
	out, seen, done, err := s.chainNewest(ctx, f, v, skip, perPage)
	if err != nil {
		return HistoryPage{}, err
	}
	if !done {
		return HistoryPage{Entries: out[:perPage], Page: page, PerPage: perPage, More: true}, nil
	}
	pg := newHistoryPage(int64(seen), page, perPage)
	pg.Counted = true
	if pg.Page == page {
		pg.Entries = append(pg.Entries, out...)
		return pg, nil
	}
	// Past the end: the last page, read again.
	out, _, _, err = s.chainNewest(ctx, f, v, (pg.Page-1)*perPage, perPage)
	if err != nil {
		return HistoryPage{}, err
	}
	pg.Entries = append(pg.Entries, out...)
	return pg, nil
}

// LatestHistory returns the n newest entries f selects, newest first,
// without counting them all (the admin home).
func (s *Store) LatestHistory(ctx context.Context, f HistoryFilter, n int) ([]HistoryEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	if s.useModel(ctx) {
		v, err := s.opsView(ctx)
		if err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		out, _, _, err := s.chainNewest(ctx, f, v, 0, n-1)
		return out, err
	}
	return s.findHistory(ctx, f.bson(), -1, int64(n))
}

// HistoryUsernames are the names that appear in the history (for the
// "who" filter), sorted.
func (s *Store) HistoryUsernames(ctx context.Context) ([]string, error) {
	if s.useModel(ctx) {
		top, err := s.chainTop(ctx)
		if err != nil {
			return nil, fmt.Errorf("read history usernames: %w", err)
		}
		if top > 0 { // history_names has them all
			names, err := s.distinctStrings(ctx, colHistoryNames, "_id")
			if err != nil {
				return nil, fmt.Errorf("read history usernames: %w", err)
			}
			slices.Sort(names)
			return names, nil
		}
	}
	names, err := s.distinctStrings(ctx, colHistory, "username")
	if err != nil {
		return nil, fmt.Errorf("read history usernames: %w", err)
	}
	return names, nil
}

func groupObject(g Group) string { return fmt.Sprintf(msgGroupObject, g.Name) }

func permissionsText(g Group) string {
	ps := make([]string, len(g.Permissions))
	for i, p := range g.Permissions {
		ps[i] = string(p)
	}
	return strings.Join(ps, ",")
}

func groupEntry(a Actor, action Action, g Group) HistoryEntry {
	e := a.entry(action)
	e.TargetGroupID, e.Object = g.ID, groupObject(g)
	return e
}

// GroupAdded is the entry of a new group (name, permissions).
func GroupAdded(a Actor, g Group) HistoryEntry {
	e := groupEntry(a, ActionAdd, g)
	e.Changes = []FieldChange{{Field: "name", After: g.Name}, {Field: "permissions", After: permissionsText(g)}}
	return e
}

// GroupChanged is the entry of a change of a group's name or permissions.
func GroupChanged(a Actor, before, after Group) HistoryEntry {
	e := groupEntry(a, ActionChange, after)
	if before.Name != after.Name {
		e.Changes = append(e.Changes, FieldChange{Field: "name", Before: before.Name, After: after.Name})
	}
	if b, af := permissionsText(before), permissionsText(after); b != af {
		e.Changes = append(e.Changes, FieldChange{Field: "permissions", Before: b, After: af})
	}
	return e
}

// GroupDeleted is the entry of a deleted group.
func GroupDeleted(a Actor, g Group) HistoryEntry {
	e := groupEntry(a, ActionDelete, g)
	e.Changes = []FieldChange{{Field: "name", Before: g.Name}, {Field: "permissions", Before: permissionsText(g)}}
	return e
}
