package store

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// History: who did what to which student (and which user account), when,
// Django's LogEntry. The
// collection history lives in the tenant's database like everything else
// of the Store, so one tenant's history can never show another's. Callers
// record an entry after the change succeeded (there are no transactions
// on FerretDB): a failure to record is the caller's to report.

// historyBatch is the most entries one insertMany carries.
const historyBatch = 500

// Action is what an entry records.
type Action string

const (
	ActionAdd         Action = "add"
	ActionChange      Action = "change"
	ActionDelete      Action = "delete"
	ActionBulkDelete  Action = "bulk_delete"  // one entry per student deleted
	ActionImport      Action = "import"       // one entry per import
	ActionResetLink   Action = "reset_link"   // a password reset link issued for a user
	ActionRolledBack  Action = "rolled_back"  // an interrupted import or bulk delete, undone (operations.go)
	ActionPasswordSet Action = "password_set" // a superuser set a user's password
)

// Label is the action for people.
func (a Action) Label() string {
	switch a {
	case ActionAdd:
		return "Added"
	case ActionChange:
		return "Changed"
	case ActionDelete:
		return "Deleted"
	case ActionBulkDelete:
		return "Deleted (bulk)"
	case ActionImport:
		return "Imported"
	case ActionResetLink:
		return "Reset link issued"
	case ActionRolledBack:
		return "Rolled back"
	case ActionPasswordSet:
		return "Password set"
	}
	return string(a)
}

// Actor is who made a change: a logged-in user, or the command line.
type Actor struct {
	UserID   string
	Username string
}

// CommandLine is the actor of `campus manage` commands. Its name cannot
// be a username (usernames have no parentheses or spaces).
var CommandLine = Actor{Username: "(command line)"}

// FieldChange is one field's value before and after ("" when the student
// did not exist before, or no longer exists after).
type FieldChange struct {
	Field  string `bson:"field" json:"field"`
	Before string `bson:"before" json:"before"`
	After  string `bson:"after" json:"after"`
}

// HistoryEntry is one recorded action.
type HistoryEntry struct {
	ID        string        `bson:"_id" json:"id"`
	At        time.Time     `bson:"at" json:"at"`
	UserID    string        `bson:"user_id,omitempty" json:"user_id,omitempty"`
	Username  string        `bson:"username" json:"username"`
	Action    Action        `bson:"action" json:"action"`
	StudentID int64         `bson:"student_id,omitempty" json:"student_id,omitempty"`
	Object    string        `bson:"object" json:"object"` // the student as shown, or "12 students"
	Changes   []FieldChange `bson:"changes,omitempty" json:"changes,omitempty"`
	Count     int           `bson:"count,omitempty" json:"count,omitempty"` // students imported
	// File and Mode are an import's file name (as uploaded) and mode
	// (ImportMode).
	File string `bson:"file,omitempty" json:"file,omitempty"`
	Mode string `bson:"mode,omitempty" json:"mode,omitempty"`
	// TargetUserID is set on entries about a user account (added,
	// changed, reset link) instead of StudentID.
	TargetUserID string `bson:"target_user_id,omitempty" json:"target_user_id,omitempty"`
	// Op is the import or bulk delete the entry is part of
	// (operations.go): it counts only once that is committed.
	Op int64 `bson:"op,omitempty" json:"op,omitempty"`
	// TargetGroupID is set on entries about a group of permissions
	// (historyrights.go).
	TargetGroupID string `bson:"target_group_id,omitempty" json:"target_group_id,omitempty"`
	// Batch is the entry's batch in the history chain (historychain.go);
	// 0 for entries recorded before it.
	Batch int64 `bson:"b,omitempty" json:"-"`
}

// studentFields are st's fields for an entry of its addition or deletion:
// the names and registration number, and the other fields it has.
func studentFields(st Student) [][2]string {
	out := make([][2]string, 0, len(recordFields))
	for i, f := range recordFields {
		if v := f.get(&st); v != "" || i < 3 {
			out = append(out, [2]string{f.name, v})
		}
	}
	return out
}

func studentObject(st Student) string {
	return st.FirstName + " " + st.SecondName + " (" + st.RegistrationNo + ")"
}

func (a Actor) entry(action Action) HistoryEntry {
	return HistoryEntry{UserID: a.UserID, Username: a.Username, Action: action}
}

// StudentAdded is the entry of a new student: every field from "".
func StudentAdded(a Actor, st Student) HistoryEntry {
	e := a.entry(ActionAdd)
	e.StudentID, e.Object = st.ID, studentObject(st)
	for _, f := range studentFields(st) {
		e.Changes = append(e.Changes, FieldChange{Field: f[0], After: f[1]})
	}
	return e
}

// StudentChanged is the entry of an edit: the fields that differ (none
// when the form was saved unchanged).
func StudentChanged(a Actor, before, after Student) HistoryEntry {
	e := a.entry(ActionChange)
	e.StudentID, e.Object = after.ID, studentObject(after)
	for _, f := range recordFields {
		if b, a := f.get(&before), f.get(&after); b != a {
			e.Changes = append(e.Changes, FieldChange{Field: f.name, Before: b, After: a})
		}
	}
	return e
}

// StudentDeleted is the entry of a deletion (bulk for the list's "Delete
// selected"): every field to "".
func StudentDeleted(a Actor, st Student, bulk bool) HistoryEntry {
	e := a.entry(ActionDelete)
	if bulk {
		e.Action = ActionBulkDelete
	}
	e.StudentID, e.Object = st.ID, studentObject(st)
	for _, f := range studentFields(st) {
		e.Changes = append(e.Changes, FieldChange{Field: f[0], Before: f[1]})
	}
	return e
}

// StudentsImported is the entry of one import of n students.
func StudentsImported(a Actor, n int) HistoryEntry {
	e := a.entry(ActionImport)
	e.Count = n
	e.Object = strconv.Itoa(n) + " students"
	if n == 1 {
		e.Object = "1 student"
	}
	return e
}

func userObject(u User) string { return fmt.Sprintf(msgUserObject, u.Username) }

func userFields(u User) [][2]string {
	return [][2]string{
		{"email", u.Email},
		{"role", u.Role()},
		{"active", strconv.FormatBool(u.IsActive)},
	}
}

// UserAdded is the entry of a new user account (email, role, active).
func UserAdded(a Actor, u User) HistoryEntry {
	e := a.entry(ActionAdd)
	e.TargetUserID, e.Object = u.ID, userObject(u)
	for _, f := range userFields(u) {
		e.Changes = append(e.Changes, FieldChange{Field: f[0], After: f[1]})
	}
	return e
}

// UserChanged is the entry of a change of a user account by a superuser.
func UserChanged(a Actor, before, after User) HistoryEntry {
	e := a.entry(ActionChange)
	e.TargetUserID, e.Object = after.ID, userObject(after)
	bf, af := userFields(before), userFields(after)
	for i := range bf {
		if bf[i][1] != af[i][1] {
			e.Changes = append(e.Changes, FieldChange{Field: bf[i][0], Before: bf[i][1], After: af[i][1]})
		}
	}
	return e
}

// PasswordSet is the entry of a user's password set by a superuser (the
// password itself is never recorded).
func PasswordSet(a Actor, u User) HistoryEntry {
	e := a.entry(ActionPasswordSet)
	e.TargetUserID, e.Object = u.ID, userObject(u)
	return e
}

// ResetLinkIssued is the entry of a password reset link issued for u.
func ResetLinkIssued(a Actor, u User) HistoryEntry {
	e := a.entry(ActionResetLink)
	e.TargetUserID, e.Object = u.ID, userObject(u)
	return e
}

// RecordHistory stores entries, stamping each with an id and the time.
func (s *Store) RecordHistory(ctx context.Context, entries ...HistoryEntry) error {
	return s.recordEntries(ctx, 0, entries...)
}

// recordEntries stores entries as part of operation op (0: none).
func (s *Store) recordEntries(ctx context.Context, op int64, entries ...HistoryEntry) error {
	if len(entries) == 0 {
		return nil
	}
	entries = slices.Clone(entries)
	for i, e := range entries {
		if e.Username == "" || e.Action == "" {
			return fmt.Errorf("record history: entry %d has no user or action", i)
		}
		if e.ID == "" {
			entries[i].ID = bson.NewObjectID().Hex()
		}
		entries[i].Op = op
	}
	for start := 0; start < len(entries); start += historyBatch {
		batch, err := s.chainEntries(ctx, entries[start:min(start+historyBatch, len(entries))])
		if err != nil {
			return fmt.Errorf("record history (%d entries): %w", len(entries), err)
		}
		if err := s.slotStudents(ctx, batch); err != nil {
			return fmt.Errorf("record history (%d entries): %w", len(entries), err)
		}
		docs := make([]any, len(batch))
		for i := range batch {
			docs[i] = batch[i]
		}
		if _, err := s.col(colHistory).InsertMany(ctx, docs); err != nil {
			err = s.full(err)
			return fmt.Errorf("record history (%d entries): %w", len(entries), err)
		}
	}
	return nil
}

// StudentsByID returns the students of ids that exist, in no particular
// order (the state before a bulk delete).
func (s *Store) StudentsByID(ctx context.Context, ids []int64) ([]Student, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if s.useModel(ctx) {
		if err := s.model(ctx); err != nil {
			return nil, fmt.Errorf("read %d students: %w", len(ids), err)
		}
		s.rm.mu.RLock()
		defer s.rm.mu.RUnlock()
		var out []Student
		for _, id := range ids {
			if doc, ok := s.rm.snap.doc(id); ok {
				out = append(out, doc.Student)
			}
		}
		return out, nil
	}
	var out []Student
	for start := 0; start < len(ids); start += deleteBatch {
		found, err := s.findStudents(ctx, d("_id", d("$in", studentIDs(ids[start:min(start+deleteBatch, len(ids))]))), nil)
		if err != nil {
			return nil, fmt.Errorf("read %d students: %w", len(ids), err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// RecentHistory returns the n newest entries, newest first; entries about
// user accounts only when withUsers (for superusers).
func (s *Store) RecentHistory(ctx context.Context, n int, withUsers bool) ([]HistoryEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.LatestHistory(ctx, HistoryFilter{Accounts: withUsers}, n)
}

// StudentHistory returns every entry about one student, oldest first.
func (s *Store) StudentHistory(ctx context.Context, id int64) ([]HistoryEntry, error) {
	if s.useModel(ctx) {
		return s.chainStudent(ctx, id)
	}
	return s.findHistory(ctx, d("student_id", id), 1, 0)
}

func (s *Store) findHistory(ctx context.Context, filter bson.D, dir int, limit int64) ([]HistoryEntry, error) {
	o := options.Find().SetSort(bson.D{{Key: "at", Value: dir}, {Key: "_id", Value: dir}})
	if limit > 0 {
		o.SetLimit(limit)
	}
	v, err := s.opsView(ctx)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	cur, err := s.col(colHistory).Find(ctx, v.historyFilter(filter), o)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := []HistoryEntry{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// ExportHistory writes every entry, oldest first, as CSV (format "csv":
// a header, one row per entry, changes as "field: before → after; …",
// cells that a spreadsheet would run as a formula prefixed with ') or
// JSON (format "json": one array of objects).
func (s *Store) ExportHistory(ctx context.Context, w io.Writer, format string) error {
	return s.ExportHistoryWhere(ctx, w, format, HistoryFilter{Accounts: true})
}

// zoneOr is loc, or UTC for nil.
func zoneOr(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

// ExportHistoryWhere is ExportHistory of the entries f selects
// (historyrights.go); CSV times are in f.Zone, with their offset.
func (s *Store) ExportHistoryWhere(ctx context.Context, w io.Writer, format string, f HistoryFilter) error {
	if format != "csv" && format != "json" {
		return fmt.Errorf("export history: unknown format %q (want csv or json)", format)
	}
	v, err := s.opsView(ctx)
	if err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	cur, err := s.col(colHistory).Find(ctx, v.historyFilter(f.bson()), options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	defer cur.Close(ctx)
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"at", "username", "action", "student_id", "object", "changes", "count", "op", "file", "mode"}); err != nil {
			return fmt.Errorf("export history: %w", err)
		}
	} else if _, err := io.WriteString(w, "["); err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	n := 0
	for cur.Next(ctx) {
		var e HistoryEntry
		if err := cur.Decode(&e); err != nil {
			return fmt.Errorf("export history: decode entry: %w", err)
		}
		if cw != nil {
			id := ""
			if e.StudentID != 0 {
				id = strconv.FormatInt(e.StudentID, 10)
			}
			count := ""
			if e.Action == ActionImport {
				count = strconv.Itoa(e.Count)
			}
			op := ""
			if e.Op != 0 {
				op = strconv.FormatInt(e.Op, 10)
			}
			row := []string{e.At.In(zoneOr(f.Zone)).Format(time.RFC3339Nano), e.Username, string(e.Action), id, e.Object, changesText(e.Changes), count, op, e.File, e.Mode}
			for i := range row {
				row[i] = spreadsheetSafe(row[i])
			}
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("export history: %w", err)
			}
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("export history: %w", err)
		}
		sep := ",\n"
		if n == 0 {
			sep = "\n"
		}
		if _, err := io.WriteString(w, sep+string(b)); err != nil {
			return fmt.Errorf("export history: %w", err)
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("export history: %w", err)
		}
		return nil
	}
	if _, err := io.WriteString(w, "\n]\n"); err != nil {
		return fmt.Errorf("export history: %w", err)
	}
	return nil
}

// changesText is "first_name: Zoe → Zoë; second_name: …".
func changesText(cs []FieldChange) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Field + ": " + c.Before + " → " + c.After
	}
	return strings.Join(parts, "; ")
}

// spreadsheetSafe keeps a spreadsheet from running a cell as a formula.
func spreadsheetSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
