package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/internal/mongotest"
)

const goodPassword = "correct horse 9"

// testAddr is the client address of tests that use only one.
const testAddr = "192.0.2.1"

func TestCreateSuperuserValidation(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	tests := []struct {
		name, username, email, password string
		badFields                       []string
	}{
		{"valid", "admin", "admin@school.example", goodPassword, nil},
		{"valid no email, symbols", "a.b+c-d_e@f", "", goodPassword, nil},
		{"username 150", strings.Repeat("u", 150), "", goodPassword, nil},
		{"username 151", strings.Repeat("v", 151), "", goodPassword, []string{"username"}},
		{"username empty", "  ", "", goodPassword, []string{"username"}},
		{"username space", "ad min", "", goodPassword, []string{"username"}},
		{"username non-ascii", "аdmin", "", goodPassword, []string{"username"}}, // Cyrillic а
		{"bad email", "user1", "not-an-email", goodPassword, []string{"email"}},
		{"email with name", "user2", "Bob <bob@x.example>", goodPassword, []string{"email"}},
		{"password short", "user3", "", "short1!", []string{"password"}},
		{"password numeric", "user4", "", "1234567890", []string{"password"}},
		{"password too long", "user5", "", strings.Repeat("p", 73), []string{"password"}},
		{"password 72 bytes", "user6", "", strings.Repeat("p", 72), nil},
		{"password = username", "Longusername", "", "longUSERNAME", []string{"password"}},
		{"everything bad", "", "x@", "1", []string{"email", "password", "username"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := s.CreateSuperuser(t.Context(), tt.username, tt.email, tt.password)
			var fe FieldErrors
			errors.As(err, &fe)
			var bad []string
			for f := range fe {
				bad = append(bad, f)
			}
			slices.Sort(bad)
			if !slices.Equal(bad, tt.badFields) {
				t.Fatalf("bad fields %v (err %v), want %v", bad, err, tt.badFields)
			}
			if tt.badFields == nil {
				if err != nil {
					t.Fatal(err)
				}
				if u.ID == "" || !u.IsSuperuser || u.PasswordHash == tt.password ||
					bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(tt.password)) != nil {
					t.Fatalf("created user %+v", u)
				}
			}
		})
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	if _, err := s.CreateSuperuser(ctx, "Zed", "", goodPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSuperuser(ctx, "admin", "a@b.example", goodPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSuperuser(ctx, "ADMIN", "", goodPassword); !errors.Is(err, ErrUserExists) {
		t.Fatalf("case-insensitive duplicate = %v, want ErrUserExists", err)
	}
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if !slices.Equal(names, []string{"admin", "Zed"}) {
		t.Fatalf("Users = %v", names)
	}

	if err := s.SetPassword(ctx, "nobody", goodPassword); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetPassword(unknown) = %v, want ErrNotFound", err)
	}
	var fe FieldErrors
	if err := s.SetPassword(ctx, "admin", "12345678"); !errors.As(err, &fe) || fe["password"] == "" {
		t.Fatalf("SetPassword(numeric) = %v, want FieldErrors{password}", err)
	}
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Authenticate(ctx, "admin", goodPassword, testAddr)
	tok, _, err := s.CreateSession(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "Admin", "new password 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after SetPassword = %v", err)
	}
	if _, err := s.Authenticate(ctx, "admin", "new password 2", testAddr); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := s.Session(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session survived SetPassword: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now})
	created, err := s.CreateSuperuser(ctx, "Principal", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)

	u, err := s.Authenticate(ctx, " principal ", goodPassword, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != created.ID || !u.LastLogin.Equal(clk.Now()) {
		t.Fatalf("authenticated %+v", u)
	}
	users, _ := s.Users(ctx)
	if !users[0].LastLogin.Equal(clk.Now()) {
		t.Fatalf("last_login not stored: %+v", users[0])
	}

	for _, tt := range []struct{ name, user, pw string }{
		{"wrong password", "principal", goodPassword + "x"},
		{"unknown user", "nobody", goodPassword},
		{"empty", "", ""},
		{"not a username", "a b\x00c", goodPassword},
		{"long password", "principal", strings.Repeat("x", 100)},
	} {
		_, err := s.Authenticate(ctx, tt.user, tt.pw, testAddr)
		if err != ErrBadCredentials { // the very same error, not a distinguishable wrapper
			t.Errorf("%s: err = %v, want ErrBadCredentials", tt.name, err)
		}
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now, MaxFailures: 3, LockoutPeriod: 10 * time.Minute})
	if _, err := s.CreateSuperuser(ctx, "admin", "", goodPassword); err != nil {
		t.Fatal(err)
	}
	fail := func(user string) error {
		_, err := s.Authenticate(ctx, user, "wrong password 1", testAddr)
		return err
	}

	// A success resets the run.
	for range 2 {
		if err := fail("admin"); err != ErrBadCredentials {
			t.Fatal(err)
		}
	}
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := fail("ADMIN"); err != ErrBadCredentials {
			t.Fatalf("failure after a reset: %v", err)
		}
	}
	// The third failure in a row locks the username.
	var le *LockedError
	if err := fail("admin"); !errors.As(err, &le) || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("third failure = %v, want *LockedError (also ErrBadCredentials)", err)
	}
	if want := clk.Now().Add(10 * time.Minute); !le.Until.Equal(want) {
		t.Fatalf("locked until %v, want %v", le.Until, want)
	}
	// Even the right password is refused while locked.
	clk.Advance(9 * time.Minute)
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); !errors.As(err, &le) {
		t.Fatalf("right password while locked = %v, want *LockedError", err)
	}
	// After the period the right password works again.
	clk.Advance(time.Minute + time.Second)
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatalf("after the lock-out: %v", err)
	}

	// Unknown usernames are tracked too, so locking does not reveal which exist.
	for range 2 {
		if err := fail("ghost"); err != ErrBadCredentials {
			t.Fatal(err)
		}
	}
	if err := fail("ghost"); !errors.As(err, &le) {
		t.Fatalf("third failure for an unknown user = %v, want *LockedError", err)
	}
	// Other usernames are not affected.
	if _, err := s.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatalf("admin locked by ghost's failures: %v", err)
	}
	// A run of failures is forgotten a day after the last one.
	for range 2 {
		_ = fail("admin")
	}
	clk.Advance(failureMemory + time.Second)
	if err := fail("admin"); err != ErrBadCredentials {
		t.Fatalf("failure after the run was forgotten = %v, want ErrBadCredentials", err)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now, SessionTTL: time.Hour})
	u, err := s.CreateSuperuser(ctx, "admin", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	tok, sess, err := s.CreateSession(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q is not 32 bytes of base64url", tok)
	}
	if sess.UserID != u.ID || sess.Username != "admin" || len(sess.CSRFToken) < 32 || !sess.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("session %+v", sess)
	}
	tok2, sess2, _ := s.CreateSession(ctx, u)
	if tok2 == tok || sess2.CSRFToken == sess.CSRFToken {
		t.Fatal("two sessions share a token")
	}

	// The token itself is not stored.
	n, err := s.col(colSessions).CountDocuments(ctx, d("$or", []any{d("_id", tok), d("csrf_token", tok)}))
	if err != nil || n != 0 {
		t.Fatalf("raw token found in the database (%d, %v)", n, err)
	}

	got, err := s.Session(ctx, tok)
	if err != nil || got != sess {
		t.Fatalf("Session = %+v, %v; want %+v", got, err, sess)
	}
	for _, bad := range []string{"", "x", tok[:42], tok + "A", strings.Repeat("!", 43), newToken()} {
		if _, err := s.Session(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Session(%q) = %v, want ErrNotFound", bad, err)
		}
	}

	if err := s.DeleteSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session = %v", err)
	}
	if err := s.DeleteSession(ctx, tok); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := s.DeleteSession(ctx, "garbage"); err != nil {
		t.Fatalf("deleting garbage: %v", err)
	}

	// Expiry is checked in code, whatever the TTL index does.
	clk.Advance(time.Hour - time.Second)
	if _, err := s.Session(ctx, tok2); err != nil {
		t.Fatalf("session a second before expiry: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := s.Session(ctx, tok2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session = %v, want ErrNotFound", err)
	}
	// Creating a session sweeps expired ones.
	if _, _, err := s.CreateSession(ctx, u); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.col(colSessions).CountDocuments(ctx, d("user_id", u.ID)); n != 1 {
		t.Fatalf("%d sessions stored after the sweep, want 1", n)
	}
}

// A session token issued by one tenant's store names nothing in another
// tenant's database on the same server, even for a same-named user.
func TestSessionsCrossTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{})
	b := newStore(t, Options{})
	if a.DatabaseName() == b.DatabaseName() {
		t.Fatal("stores share a database")
	}
	ua, err := a.CreateSuperuser(ctx, "admin", "", goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSuperuser(ctx, "admin", "", goodPassword); err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.CreateSession(ctx, ua)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Session(ctx, tok); err != nil {
		t.Fatalf("token not found in its own tenant: %v", err)
	}
	if _, err := b.Session(ctx, tok); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tenant B accepted tenant A's token: %v", err)
	}
	if err := b.DeleteSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Session(ctx, tok); err != nil {
		t.Fatalf("tenant B's logout ended tenant A's session: %v", err)
	}
	// Students and lock-outs stay apart too.
	mustCreate(t, a, "X-1", "Only", "InA")
	if n := count(t, b); n != 0 {
		t.Fatalf("tenant B sees %d students", n)
	}
	mustCreate(t, b, "X-1", "Same", "RegNo") // not a duplicate across tenants

	for range a.opts.MaxFailures {
		_, _ = a.Authenticate(ctx, "admin", "wrong password 1", testAddr)
	}
	var le *LockedError
	if _, err := a.Authenticate(ctx, "admin", goodPassword, testAddr); !errors.As(err, &le) {
		t.Fatalf("tenant A not locked: %v", err)
	}
	if _, err := b.Authenticate(ctx, "admin", goodPassword, testAddr); err != nil {
		t.Fatalf("tenant A's lock-out locked tenant B's admin: %v", err)
	}
}

// BenchmarkAuthenticateFailure compares the cost of a wrong password with
// that of an unknown username (at the default bcrypt cost); they should be
// close, so timing does not reveal which usernames exist.
func BenchmarkAuthenticateFailure(b *testing.B) {
	s := New(mongotest.Database(b), Options{MaxFailures: 1 << 30, MaxAddressFailures: 1 << 30, MaxUserFailures: 1 << 30})
	if _, _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateSuperuser(b.Context(), "admin", "", goodPassword); err != nil {
		b.Fatal(err)
	}
	for _, user := range []string{"admin", "nobody"} {
		b.Run(user, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Authenticate(b.Context(), user, "wrong password 1", testAddr); err != ErrBadCredentials {
					b.Fatal(err)
				}
			}
		})
	}
}
