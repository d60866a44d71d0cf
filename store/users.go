package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"
)

// userDoc is a User as stored: username_lower carries the unique index
// that makes usernames case-insensitively unique.
type userDoc struct {
	User          `bson:",inline"`
	UsernameLower string `bson:"username_lower"`
}

// NewUser is what a superuser (or createsuperuser) gives for a new user.
type NewUser struct {
	Username, Email, Password string
	IsSuperuser               bool
	// Groups are the IDs of the user's groups (permissions.go); nil means
	// the built-in "staff" group for a non-superuser, none for a superuser.
	Groups []string
}

// CreateSuperuser creates an active superuser. Errors: FieldErrors
// (username, email, password), ErrUserExists (usernames are compared
// case-insensitively).
func (s *Store) CreateSuperuser(ctx context.Context, username, email, password string) (User, error) {
	return s.CreateUser(ctx, NewUser{Username: username, Email: email, Password: password, IsSuperuser: true})
}

// CreateUser creates an active user, staff or superuser, with the same
// rules and errors as CreateSuperuser.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	if fe := ValidateSuperuser(nu.Username, nu.Email, nu.Password); fe != nil {
		return User{}, fe
	}
	username := normalizeUsername(nu.Username)
	email := strings.TrimSpace(nu.Email)
	key := usernameKey(username)
	n, err := s.col(colUsers).CountDocuments(ctx, d("username_lower", key), options.Count().SetLimit(1))
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if n > 0 {
		return User{}, fmt.Errorf("create user %q: %w", username, ErrUserExists)
	}
	groups := nu.Groups
	if groups == nil && !nu.IsSuperuser {
		groups = []string{GroupStaff}
	}
	if groups, err = s.checkGroupIDs(ctx, groups); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(nu.Password), s.opts.BcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("create user: hash password: %w", err)
	}
	u := User{
		ID: bson.NewObjectID().Hex(), Username: username, Email: email,
		PasswordHash: string(hash), IsSuperuser: nu.IsSuperuser, IsActive: true, CreatedAt: s.now(),
		Groups: groups,
	}
	if _, err := s.col(colUsers).InsertOne(ctx, userDoc{User: u, UsernameLower: key}); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return User{}, fmt.Errorf("create user %q: %w", username, ErrUserExists)
		}
		return User{}, fmt.Errorf("create user: %w", s.full(err))
	}
	return u, nil
}

// UserChange is what a superuser may change of a user. The username is
// fixed: history entries and sessions name users by it.
type UserChange struct {
	Email       string
	IsSuperuser bool
	IsActive    bool
	// Groups, when not nil, replace the user's groups (IDs).
	Groups []string
}

// UpdateUser changes a user's email, role and active flag (FieldErrors
// {"email"} for a bad address, ErrNotFound for an unknown id).
// Deactivating a user ends every session of the user and voids the user's
// password reset links.
func (s *Store) UpdateUser(ctx context.Context, id string, ch UserChange) (User, error) {
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	email := strings.TrimSpace(ch.Email)
	if msg := checkEmail(email); msg != "" {
		return User{}, FieldErrors{"email": msg}
	}
	set := bson.D{{Key: "email", Value: email}, {Key: "is_superuser", Value: ch.IsSuperuser}, {Key: "is_active", Value: ch.IsActive}}
	if ch.Groups != nil {
		ids, err := s.checkGroupIDs(ctx, ch.Groups)
		if err != nil {
			return User{}, err
		}
		set = append(set, bson.E{Key: "groups", Value: ids})
		u.Groups = ids
	}
	if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", set)); err != nil {
		return User{}, fmt.Errorf("update user %q: %w", u.Username, s.full(err))
	}
	u.Email, u.IsSuperuser, u.IsActive = email, ch.IsSuperuser, ch.IsActive
	if !u.IsActive {
		if err := s.endSessions(ctx, u.ID, ""); err != nil {
			return User{}, fmt.Errorf("deactivate user %q: %w", u.Username, err)
		}
		if _, err := s.col(colPasswordResets).DeleteMany(ctx, d("user_id", u.ID)); err != nil {
			return User{}, fmt.Errorf("deactivate user %q: void reset links: %w", u.Username, s.full(err))
		}
	}
	return u, nil
}

// UserByID returns a user (ErrNotFound for ids that name nobody here).
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	var u User
	err := s.col(colUsers).FindOne(ctx, d("_id", id)).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %q: %w", id, err)
	}
	return u, nil
}

// SetPassword changes a user's password (FieldErrors{"password"} when it
// breaks the rules, ErrNotFound for an unknown user), ends the user's
// sessions, voids the user's reset links and lifts any lock-out.
func (s *Store) SetPassword(ctx context.Context, username, password string) error {
	u, err := s.userByKey(ctx, usernameKey(username))
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return s.setPassword(ctx, u, password, "")
}

// ChangePassword is a logged-in user changing their own password: the
// session named by token must be live, oldPassword must be the user's
// current password, checked by Authenticate from the client address from
// (so guesses through this form are throttled and counted like logins;
// ErrWrongPassword, or a *LockedError while locked), newPassword must
// keep the rules (FieldErrors{"password"}). Every other session of the
// user ends; the one named by token continues.
func (s *Store) ChangePassword(ctx context.Context, token, from, oldPassword, newPassword string) error {
	sess, err := s.Session(ctx, token)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if msg := checkPassword(newPassword, sess.Username); msg != "" {
		return FieldErrors{"password": msg}
	}
	u, err := s.Authenticate(ctx, sess.Username, oldPassword, from)
	var le *LockedError
	switch {
	case errors.As(err, &le):
		return err
	case errors.Is(err, ErrBadCredentials):
		return ErrWrongPassword
	case err != nil:
		return fmt.Errorf("change password: %w", err)
	case u.ID != sess.UserID: // cannot happen: usernames are unique and fixed
		return fmt.Errorf("change password: session and user disagree: %w", ErrNotFound)
	}
	id, _ := tokenID(token)
	return s.setPassword(ctx, u, newPassword, id)
}

// setPassword checks and stores a new password of u, then ends every
// session of u except keepSession (a stored session id, or ""), voids
// u's reset links and clears u's lock-outs.
func (s *Store) setPassword(ctx context.Context, u User, password, keepSession string) error {
	if msg := checkPassword(password, u.Username, u.Email); msg != "" {
		return FieldErrors{"password": msg}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("set password: hash: %w", err)
	}
	if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", d("password_hash", string(hash)))); err != nil {
		return fmt.Errorf("set password of %q: %w", u.Username, s.full(err))
	}
	if err := s.endSessions(ctx, u.ID, keepSession); err != nil {
		return fmt.Errorf("set password of %q: %w", u.Username, err)
	}
	if _, err := s.col(colPasswordResets).DeleteMany(ctx, d("user_id", u.ID)); err != nil {
		return fmt.Errorf("set password of %q: void reset links: %w", u.Username, s.full(err))
	}
	if _, err := s.clearFailures(ctx, usernameKey(u.Username)); err != nil {
		return fmt.Errorf("set password of %q: clear lock-out: %w", u.Username, err)
	}
	return nil
}

func (s *Store) userByKey(ctx context.Context, key string) (User, error) {
	var u User
	err := s.col(colUsers).FindOne(ctx, d("username_lower", key)).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, fmt.Errorf("user %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %q: %w", key, err)
	}
	return u, nil
}

// Users lists every user by username.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	cur, err := s.col(colUsers).Find(ctx, bson.D{}, options.Find().SetSort(d("username_lower", 1)))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := []User{}
	if err := cur.All(ctx, &users); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// dummy returns a hash to compare against when the user does not exist, so
// that an unknown username costs a bcrypt comparison too.
func (s *Store) dummy() []byte {
	s.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), s.opts.BcryptCost)
		if err != nil {
			panic(fmt.Sprintf("store: dummy bcrypt hash: %v", err)) // cost is clamped; cannot happen
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

// Authenticate checks a password for an attempt from the client address
// from (an IP address; see AddressKey). It returns ErrBadCredentials for
// any wrong username or password (indistinguishable, similar timing) and a
// *LockedError while a counter of the attempt is full (see logins.go):
// MaxFailures failures of one username from one address, MaxAddressFailures
// from one address or MaxUserFailures for one username. The failure that
// fills a counter already returns *LockedError, and while locked even the
// right password is refused, without being checked. Unknown usernames are
// counted like known ones. A success resets the (username, address) count
// and records last_login. An inactive user is refused like an unknown one.
func (s *Store) Authenticate(ctx context.Context, username, password, from string) (User, error) {
	now := s.now()
	key := usernameKey(username)
	// Strings that cannot be usernames are counted by address only: no
	// account can be locked through them.
	tracked := checkUsername(key) == ""
	cs := s.loginCounters(key, tracked, AddressKey(from))

	if err := s.sweepSlots(ctx, now); err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	slots, err := s.reserveAll(ctx, cs, now)
	if err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			// Cost a refusal like a check, so timing does not tell it apart.
			_ = bcrypt.CompareHashAndPassword(s.dummy(), []byte(password))
			return User{}, err
		}
		return User{}, fmt.Errorf("authenticate: %w", err)
	}

	var u User
	hash := s.dummy()
	found := false
	if tracked {
		u, err = s.userByKey(ctx, key)
		switch {
		case err == nil && u.IsActive:
			hash, found = []byte(u.PasswordHash), true
		case err == nil:
			// Inactive: checked against the dummy like an unknown
			// username, so neither the answer nor its timing tells.
		case !errors.Is(err, ErrNotFound):
			return User{}, errors.Join(fmt.Errorf("authenticate: %w", err), s.release(ctx, slots))
		}
	}
	if s.beforeCheck != nil {
		s.beforeCheck()
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil

	if found && match {
		// found implies tracked, so cs[0] is the pair: its run of
		// failures ends. The address and username counters only get
		// this attempt's slots back.
		if _, err := s.col(colLoginFailures).DeleteMany(ctx, cs[0].slots()); err != nil {
			return User{}, fmt.Errorf("authenticate: reset failures: %w", s.full(err))
		}
		if err := s.release(ctx, slots[1:]); err != nil {
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", d("last_login", now))); err != nil {
			return User{}, fmt.Errorf("authenticate: record last login: %w", s.full(err))
		}
		u.LastLogin = now
		return u, nil
	}
	if err := s.failed(ctx, cs, now); err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			return User{}, err
		}
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	return User{}, ErrBadCredentials
}
