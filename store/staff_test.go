package store

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const staffPassword = "staff-password-7"

func mustStaff(t *testing.T, s *Store, name string) User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), NewUser{Username: name, Email: name + "@example.com", Password: staffPassword})
	if err != nil {
		t.Fatalf("create staff %s: %v", name, err)
	}
	return u
}

func TestCreateUserRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	su, err := s.CreateSuperuser(ctx, "head", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	staff := mustStaff(t, s, "secretary")
	if !su.IsSuperuser || !su.IsActive || su.Role() != "superuser" {
		t.Errorf("superuser = %+v", su)
	}
	if staff.IsSuperuser || !staff.IsActive || staff.Role() != "staff" {
		t.Errorf("staff = %+v", staff)
	}
	got, err := s.UserByID(ctx, staff.ID)
	if err != nil || got.Username != "secretary" || got.IsSuperuser || !got.IsActive {
		t.Fatalf("UserByID = %+v, %v", got, err)
	}
	tests := []struct {
		name  string
		nu    NewUser
		field string
		is    error
	}{
		{"taken, other case", NewUser{Username: "SECRETARY", Password: staffPassword}, "", ErrUserExists},
		{"weak password", NewUser{Username: "clerk", Password: "12345678"}, "password", nil},
		{"short password", NewUser{Username: "clerk", Password: "abc"}, "password", nil},
		{"password is username", NewUser{Username: "clerk-one", Password: "Clerk-One"}, "password", nil},
		{"bad username", NewUser{Username: "a b", Password: staffPassword}, "username", nil},
		{"bad email", NewUser{Username: "clerk", Email: "nope", Password: staffPassword}, "email", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateUser(ctx, tt.nu)
			var fe FieldErrors
			switch {
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Fatalf("err = %v, want %v", err, tt.is)
			case tt.field != "" && (!errors.As(err, &fe) || fe[tt.field] == ""):
				t.Fatalf("err = %v, want a %s error", err, tt.field)
			}
		})
	}
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users = %d, %v; want the 2 created", len(users), err)
	}
}

// Deactivating ends every session, refuses the right password and voids
// reset links; reactivating lets the user log in again.
func TestDeactivateUser(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	u := mustStaff(t, s, "secretary")
	tok1, _, _ := s.CreateSession(ctx, u)
	tok2, _, _ := s.CreateSession(ctx, u)
	reset, _, err := s.CreateResetToken(ctx, "secretary", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, UserChange{Email: u.Email, IsActive: false}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tok1, tok2} {
		if _, err := s.Session(ctx, tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("session of a deactivated user: %v", err)
		}
	}
	if _, err := s.Authenticate(ctx, "secretary", staffPassword, testAddr); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("deactivated user logged in: %v", err)
	}
	if _, err := s.ResetPassword(ctx, reset, "brand-new-pass-1"); !errors.Is(err, ErrResetInvalid) {
		t.Errorf("reset link of a deactivated user: %v", err)
	}
	if _, _, err := s.CreateResetToken(ctx, "secretary", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("reset link issued for a deactivated user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, UserChange{Email: "x", IsActive: true}); err == nil {
		t.Error("bad email accepted")
	}
	if _, err := s.UpdateUser(ctx, "nobody", UserChange{IsActive: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, UserChange{Email: u.Email, IsActive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "secretary", staffPassword, testAddr); err != nil {
		t.Errorf("reactivated user cannot log in: %v", err)
	}
}

// The role a session carries is the user's current one.
func TestSessionRoleFollowsUser(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	u, err := s.CreateSuperuser(ctx, "head", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	tok, sess, _ := s.CreateSession(ctx, u)
	if !sess.IsSuperuser {
		t.Fatal("new session of a superuser is not superuser")
	}
	if _, err := s.UpdateUser(ctx, u.ID, UserChange{IsSuperuser: false, IsActive: true}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, tok)
	if err != nil || got.IsSuperuser {
		t.Fatalf("after demotion Session = %+v, %v; want a staff session", got, err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	u := mustStaff(t, s, "secretary")
	current, _, _ := s.CreateSession(ctx, u)
	other, _, _ := s.CreateSession(ctx, u)
	const newPassword = "new-secret-99"

	if err := s.ChangePassword(ctx, current, testAddr, "wrong-old-1", newPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong old password: %v", err)
	}
	var fe FieldErrors
	if err := s.ChangePassword(ctx, current, testAddr, staffPassword, "123456789"); !errors.As(err, &fe) || fe["password"] == "" {
		t.Fatalf("numeric new password: %v", err)
	}
	if _, err := s.Session(ctx, other); err != nil {
		t.Fatalf("a refused change ended a session: %v", err)
	}
	if _, err := s.Authenticate(ctx, "secretary", staffPassword, testAddr); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}
	if err := s.ChangePassword(ctx, "not-a-token", testAddr, staffPassword, newPassword); !errors.Is(err, ErrNotFound) {
		t.Fatalf("without a session: %v", err)
	}
	if err := s.ChangePassword(ctx, current, testAddr, staffPassword, newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, current); err != nil {
		t.Errorf("the current session ended: %v", err)
	}
	if _, err := s.Session(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("another session survived the change: %v", err)
	}
	if _, err := s.Authenticate(ctx, "secretary", staffPassword, testAddr); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password still works: %v", err)
	}
	if _, err := s.Authenticate(ctx, "secretary", newPassword, testAddr); err != nil {
		t.Errorf("new password refused: %v", err)
	}
}

func TestResetToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now})
	u := mustStaff(t, s, "secretary")
	sess, _, _ := s.CreateSession(ctx, u)

	tok, exp, err := s.CreateResetToken(ctx, "Secretary", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("expires %v, want in an hour", exp)
	}
	// Only the hash is at rest.
	var docs []bson.M
	cur, err := s.col(colPasswordResets).Find(ctx, bson.D{})
	if err != nil || cur.All(ctx, &docs) != nil || len(docs) != 1 {
		t.Fatalf("reset docs: %v %v", docs, err)
	}
	if raw, _ := bson.Marshal(docs[0]); bytes.Contains(raw, []byte(tok)) {
		t.Fatal("the token is stored in clear")
	}
	if got, err := s.ResetTokenUser(ctx, tok); err != nil || got.ID != u.ID {
		t.Fatalf("ResetTokenUser = %v, %v", got.Username, err)
	}
	// A weak password keeps the token.
	var fe FieldErrors
	if _, err := s.ResetPassword(ctx, tok, "secretary"); !errors.As(err, &fe) {
		t.Fatalf("weak password: %v", err)
	}
	if _, err := s.ResetPassword(ctx, tok, "after-reset-11"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := s.ResetPassword(ctx, tok, "after-reset-22"); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := s.ResetTokenUser(ctx, tok); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("spent token still shows its form: %v", err)
	}
	if _, err := s.Session(ctx, sess); !errors.Is(err, ErrNotFound) {
		t.Errorf("a reset left a session alive: %v", err)
	}
	if _, err := s.Authenticate(ctx, "secretary", "after-reset-11", testAddr); err != nil {
		t.Errorf("reset password refused: %v", err)
	}

	// Expiry.
	old, _, _ := s.CreateResetToken(ctx, "secretary", time.Hour)
	clk.Advance(time.Hour)
	if _, err := s.ResetPassword(ctx, old, "after-reset-33"); !errors.Is(err, ErrResetInvalid) {
		t.Errorf("expired token: %v", err)
	}
	// A new password by any means voids outstanding tokens.
	pending, _, _ := s.CreateResetToken(ctx, "secretary", 0)
	if err := s.SetPassword(ctx, "secretary", "set-by-cli-44"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResetTokenUser(ctx, pending); !errors.Is(err, ErrResetInvalid) {
		t.Errorf("token survived a new password: %v", err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 43), tok + "x"} {
		if _, err := s.ResetPassword(ctx, bad, "after-reset-55"); !errors.Is(err, ErrResetInvalid) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, _, err := s.CreateResetToken(ctx, "nobody", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if _, _, err := s.CreateResetToken(ctx, "secretary", MaxResetTTL+time.Second); err == nil {
		t.Error("a link for longer than MaxResetTTL was issued")
	}
}

// Uses racing for one token: exactly one wins.
func TestResetTokenRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	mustStaff(t, s, "secretary")
	tok, _, err := s.CreateResetToken(ctx, "secretary", 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.ResetPassword(ctx, tok, "racing-pass-"+string(rune('a'+i))) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrResetInvalid):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d uses of one token succeeded, want 1", ok)
	}
}

// A reset token and history of tenant A mean nothing at tenant B.
func TestResetAndHistoryCrossTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{})
	b := newStore(t, Options{})
	mustStaff(t, a, "secretary")
	mustStaff(t, b, "secretary")
	tok, _, err := a.CreateResetToken(ctx, "secretary", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ResetPassword(ctx, tok, "stolen-link-1"); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("tenant B used tenant A's reset link: %v", err)
	}
	if _, err := b.Authenticate(ctx, "secretary", staffPassword, testAddr); err != nil {
		t.Fatalf("tenant B's password changed: %v", err)
	}
	st := mustCreate(t, a, "A-1", "Only", "InA")
	if err := a.RecordHistory(ctx, StudentAdded(Actor{Username: "secretary"}, st)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.RecentHistory(ctx, 10, true); err != nil || len(got) != 0 {
		t.Fatalf("tenant B's recent actions = %v, %v; want none", got, err)
	}
	if got, err := b.StudentHistory(ctx, st.ID); err != nil || len(got) != 0 {
		t.Fatalf("tenant B's history of A's student = %v, %v", got, err)
	}
	if got, _ := a.RecentHistory(ctx, 10, true); len(got) != 1 {
		t.Fatalf("tenant A's recent actions = %v", got)
	}
}

// Version 1 users (no is_active) are active after Migrate, which stays
// idempotent.
func TestMigrateStaffRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	u, err := s.CreateSuperuser(ctx, "head", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$unset", d("is_active", ""))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$set", d("version", 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "head", goodPassword, testAddr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a user without is_active logged in before migrating: %v", err)
	}
	for i := range 2 {
		from, to, err := s.Migrate(ctx)
		if err != nil || to != SchemaVersion {
			t.Fatalf("Migrate #%d = %d, %d, %v", i, from, to, err)
		}
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil || !got.IsActive || !got.IsSuperuser {
		t.Fatalf("after Migrate = %+v, %v", got, err)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now})
	who := Actor{UserID: "u1", Username: "secretary"}
	a := mustCreate(t, s, "R-1", "Zoe", "Achieng")
	b := mustCreate(t, s, "R-2", "=HYPERLINK(1)", "Otieno")
	a2 := a
	a2.FirstName = "Zoë"
	steps := []HistoryEntry{
		StudentAdded(who, a),
		StudentAdded(who, b),
		StudentChanged(who, a, a2),
		StudentDeleted(who, b, true),
		StudentsImported(CommandLine, 3),
	}
	for _, e := range steps {
		clk.Advance(time.Second)
		if err := s.RecordHistory(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordHistory(ctx, HistoryEntry{Action: ActionAdd}); err == nil {
		t.Error("an entry without a user was recorded")
	}

	recent, err := s.RecentHistory(ctx, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []Action
	for _, e := range recent {
		got = append(got, e.Action)
	}
	if want := []Action{ActionImport, ActionBulkDelete, ActionChange}; !slices.Equal(got, want) {
		t.Fatalf("recent actions %v, want %v", got, want)
	}
	if recent[0].Username != CommandLine.Username || recent[0].Count != 3 || recent[0].Object != "3 students" {
		t.Errorf("import entry = %+v", recent[0])
	}

	hist, err := s.StudentHistory(ctx, a.ID)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history of a = %+v, %v", hist, err)
	}
	if hist[0].Action != ActionAdd || hist[1].Action != ActionChange {
		t.Errorf("history order %v, %v", hist[0].Action, hist[1].Action)
	}
	ch := hist[1].Changes
	if len(ch) != 1 || ch[0] != (FieldChange{Field: "first_name", Before: "Zoe", After: "Zoë"}) {
		t.Errorf("changes = %+v; want only first_name Zoe → Zoë", ch)
	}
	if hist[1].Username != "secretary" || hist[1].UserID != "u1" || !hist[1].At.After(hist[0].At) {
		t.Errorf("change entry = %+v", hist[1])
	}
	del, _ := s.StudentHistory(ctx, b.ID)
	if len(del) != 2 || del[1].Changes[0] != (FieldChange{Field: "registration_no", Before: "R-2"}) {
		t.Errorf("history of b = %+v", del)
	}

	var csvOut bytes.Buffer
	if err := s.ExportHistory(ctx, &csvOut, "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 1+len(steps) {
		t.Fatalf("csv rows = %d, %v", len(rows), err)
	}
	if rows[3][2] != "change" || rows[3][5] != "first_name: Zoe → Zoë" {
		t.Errorf("csv change row = %q", rows[3])
	}
	if !strings.HasPrefix(rows[2][4], "'=HYPERLINK") {
		t.Errorf("formula not neutralised in csv: %q", rows[2][4])
	}
	var jsonOut bytes.Buffer
	if err := s.ExportHistory(ctx, &jsonOut, "json"); err != nil {
		t.Fatal(err)
	}
	var entries []HistoryEntry
	if err := json.Unmarshal(jsonOut.Bytes(), &entries); err != nil || len(entries) != len(steps) {
		t.Fatalf("json = %d entries, %v:\n%s", len(entries), err, jsonOut.String())
	}
	if entries[0].Action != ActionAdd || entries[4].Action != ActionImport {
		t.Errorf("json order: %v … %v", entries[0].Action, entries[4].Action)
	}
	if err := s.ExportHistory(ctx, &jsonOut, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestStudentsByID(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	a := mustCreate(t, s, "R-1", "A", "A")
	mustCreate(t, s, "R-2", "B", "B")
	got, err := s.StudentsByID(t.Context(), []int64{a.ID, 999})
	if err != nil || len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("StudentsByID = %+v, %v", got, err)
	}
}

// Guesses of the old password are counted like failed logins: the form
// cannot be used to guess a password faster than the login page.
func TestChangePasswordThrottled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{MaxFailures: 3})
	u := mustStaff(t, s, "secretary")
	tok, _, _ := s.CreateSession(ctx, u)
	for i := range 3 {
		err := s.ChangePassword(ctx, tok, testAddr, "guess-number-"+string(rune('a'+i)), "new-secret-99")
		if !errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var le *LockedError
	if err := s.ChangePassword(ctx, tok, testAddr, staffPassword, "new-secret-99"); !errors.As(err, &le) {
		t.Fatalf("after 3 wrong guesses the right old password: %v; want a lock-out", err)
	}
	if _, err := s.Authenticate(ctx, "secretary", staffPassword, testAddr); !errors.As(err, &le) {
		t.Fatalf("the login page is not locked too: %v", err)
	}
}

// Changes of user accounts are recorded with what changed, and left out
// of the recent actions shown to staff.
func TestUserHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	who := Actor{UserID: "u1", Username: "head"}
	u := mustStaff(t, s, "secretary")
	after := u
	after.IsSuperuser, after.IsActive = true, false
	st := mustCreate(t, s, "R-1", "Ada", "Obi")
	if err := s.RecordHistory(ctx, UserAdded(who, u), UserChanged(who, u, after), ResetLinkIssued(who, u), StudentAdded(who, st)); err != nil {
		t.Fatal(err)
	}
	all, err := s.RecentHistory(ctx, 10, true)
	if err != nil || len(all) != 4 {
		t.Fatalf("recent with users = %d, %v", len(all), err)
	}
	var changed HistoryEntry
	for _, e := range all {
		if e.Action == ActionChange {
			changed = e
		}
	}
	want := []FieldChange{{Field: "role", Before: "staff", After: "superuser"}, {Field: "active", Before: "true", After: "false"}}
	if changed.TargetUserID != u.ID || changed.Object != "user secretary" || !slices.Equal(changed.Changes, want) {
		t.Errorf("user change entry = %+v", changed)
	}
	staffView, err := s.RecentHistory(ctx, 10, false)
	if err != nil || len(staffView) != 1 || staffView[0].StudentID != st.ID {
		t.Fatalf("recent without users = %+v, %v; want only the student", staffView, err)
	}
}
