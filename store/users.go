package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"
)

// failureMemory is how long a run of failed logins is remembered after the
// last failure (or after a lock-out ends).
const failureMemory = 24 * time.Hour

// userDoc is a User as stored: username_lower carries the unique index
// that makes usernames case-insensitively unique.
type userDoc struct {
	User          `bson:",inline"`
	UsernameLower string `bson:"username_lower"`
}

// failureDoc counts consecutive failed logins for one username key.
type failureDoc struct {
	Key         string    `bson:"_id"`
	Count       int       `bson:"count"`
	LockedUntil time.Time `bson:"locked_until,omitempty"`
	ExpiresAt   time.Time `bson:"expires_at"`
}

// CreateSuperuser creates an admin. Errors: FieldErrors (username, email,
// password), ErrUserExists (usernames are compared case-insensitively).
func (s *Store) CreateSuperuser(ctx context.Context, username, email, password string) (User, error) {
	username = normalizeUsername(username)
	email = strings.TrimSpace(email)
	fe := FieldErrors{}
	if msg := checkUsername(username); msg != "" {
		fe["username"] = msg
	}
	if msg := checkEmail(email); msg != "" {
		fe["email"] = msg
	}
	if msg := checkPassword(password, username); msg != "" {
		fe["password"] = msg
	}
	if len(fe) > 0 {
		return User{}, fe
	}
	key := usernameKey(username)
	n, err := s.col(colUsers).CountDocuments(ctx, d("username_lower", key), options.Count().SetLimit(1))
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if n > 0 {
		return User{}, fmt.Errorf("create user %q: %w", username, ErrUserExists)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return User{}, fmt.Errorf("create user: hash password: %w", err)
	}
	u := User{
		ID: bson.NewObjectID().Hex(), Username: username, Email: email,
		PasswordHash: string(hash), IsSuperuser: true, CreatedAt: s.now(),
	}
	if _, err := s.col(colUsers).InsertOne(ctx, userDoc{User: u, UsernameLower: key}); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return User{}, fmt.Errorf("create user %q: %w", username, ErrUserExists)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// SetPassword changes a user's password (FieldErrors{"password"} when it
// breaks the rules, ErrNotFound for an unknown user), ends the user's
// sessions and lifts any lock-out.
func (s *Store) SetPassword(ctx context.Context, username, password string) error {
	u, err := s.userByKey(ctx, usernameKey(username))
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if msg := checkPassword(password, u.Username); msg != "" {
		return FieldErrors{"password": msg}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("set password: hash: %w", err)
	}
	if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", d("password_hash", string(hash)))); err != nil {
		return fmt.Errorf("set password of %q: %w", u.Username, err)
	}
	if _, err := s.col(colSessions).DeleteMany(ctx, d("user_id", u.ID)); err != nil {
		return fmt.Errorf("set password of %q: end sessions: %w", u.Username, err)
	}
	if _, err := s.col(colLoginFailures).DeleteOne(ctx, d("_id", usernameKey(u.Username))); err != nil {
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

// Authenticate checks a password. It returns ErrBadCredentials for any
// wrong username or password (indistinguishable, similar timing) and a
// *LockedError while locked out. Failures are counted per username, known
// or not; MaxFailures in a row lock the username for LockoutPeriod
// (the failure that reaches the limit already returns *LockedError). A
// success resets the count and records last_login.
func (s *Store) Authenticate(ctx context.Context, username, password string) (User, error) {
	now := s.now()
	key := usernameKey(username)
	// Strings that cannot be usernames are not tracked: no account can be
	// locked through them.
	tracked := checkUsername(key) == ""

	if tracked {
		var f failureDoc
		err := s.col(colLoginFailures).FindOne(ctx, d("_id", key)).Decode(&f)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return User{}, fmt.Errorf("authenticate: read failures: %w", err)
		}
		if f.LockedUntil.After(now) {
			return User{}, &LockedError{Until: f.LockedUntil}
		}
	}

	var u User
	hash := s.dummy()
	found := false
	if tracked {
		var err error
		u, err = s.userByKey(ctx, key)
		switch {
		case err == nil:
			hash, found = []byte(u.PasswordHash), true
		case !errors.Is(err, ErrNotFound):
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil

	if found && match {
		if _, err := s.col(colLoginFailures).DeleteOne(ctx, d("_id", key)); err != nil {
			return User{}, fmt.Errorf("authenticate: reset failures: %w", err)
		}
		if _, err := s.col(colUsers).UpdateOne(ctx, d("_id", u.ID), d("$set", d("last_login", now))); err != nil {
			return User{}, fmt.Errorf("authenticate: record last login: %w", err)
		}
		u.LastLogin = now
		return u, nil
	}
	if tracked {
		if err := s.recordFailure(ctx, key, now); err != nil {
			return User{}, err
		}
	}
	return User{}, ErrBadCredentials
}

// recordFailure counts one failed login for key and returns a *LockedError
// when that reaches MaxFailures.
func (s *Store) recordFailure(ctx context.Context, key string, now time.Time) error {
	// Forget expired runs (TTL deletion is lazy, and FerretDB has none).
	if _, err := s.col(colLoginFailures).DeleteMany(ctx, d("expires_at", d("$lte", now))); err != nil {
		return fmt.Errorf("authenticate: expire failures: %w", err)
	}
	var f failureDoc
	err := retryUpsert(func() error {
		return s.col(colLoginFailures).FindOneAndUpdate(ctx, d("_id", key),
			bson.D{
				{Key: "$inc", Value: d("count", 1)},
				{Key: "$set", Value: d("expires_at", now.Add(failureMemory))},
			},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
		).Decode(&f)
	})
	if err != nil {
		return fmt.Errorf("authenticate: count failure: %w", err)
	}
	if f.Count < s.opts.MaxFailures {
		return nil
	}
	until := now.Add(s.opts.LockoutPeriod)
	_, err = s.col(colLoginFailures).UpdateOne(ctx, d("_id", key), d("$set", bson.D{
		{Key: "count", Value: 0},
		{Key: "locked_until", Value: until},
		{Key: "expires_at", Value: until.Add(failureMemory)},
	}))
	if err != nil {
		return fmt.Errorf("authenticate: lock out: %w", err)
	}
	return &LockedError{Until: until}
}
