package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// One-time password reset links.
//
// A superuser (in the admin) or an operator (`campus manage T resetlink
// USER`) issues a token for an active user; the person opens the link and
// chooses a new password. The token is 32 random bytes, like a session
// token; the collection password_resets keeps only its SHA-256 (_id), the
// user and the expiry. A token works once: the reset deletes it, and the
// delete is what decides between two uses racing (a delete by _id removes
// the document at most once, on MongoDB and on FerretDB). A password
// that breaks the rules leaves the token valid, so the person can try
// again. Any new password of the user (reset, change, changepassword) and
// deactivation void every outstanding token of the user.

// DefaultResetTTL is how long a reset link works when the caller gives no
// duration.
const DefaultResetTTL = 24 * time.Hour

// MaxResetTTL bounds a reset link's life.
const MaxResetTTL = 7 * 24 * time.Hour

type resetDoc struct {
	ID        string    `bson:"_id"` // hex SHA-256 of the token
	UserID    string    `bson:"user_id"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// CreateResetToken issues a reset token for the active user username,
// valid for ttl (DefaultResetTTL when 0; at most MaxResetTTL). It returns
// the token, to be put in a link and never stored, and its expiry.
// ErrNotFound for unknown or inactive users.
func (s *Store) CreateResetToken(ctx context.Context, username string, ttl time.Duration) (string, time.Time, error) {
	switch {
	case ttl == 0:
		ttl = DefaultResetTTL
	case ttl < 0 || ttl > MaxResetTTL:
		return "", time.Time{}, fmt.Errorf("reset link: lifetime %s must be between 0 and %s", ttl, MaxResetTTL)
	}
	u, err := s.userByKey(ctx, usernameKey(username))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("reset link: %w", err)
	}
	if !u.IsActive {
		return "", time.Time{}, fmt.Errorf("reset link: user %q is inactive: %w", u.Username, ErrNotFound)
	}
	now := s.now()
	// Sweep expired tokens (no TTL deletion on FerretDB). Best effort.
	_, _ = s.col(colPasswordResets).DeleteMany(ctx, d("expires_at", d("$lte", now)))
	token := newToken()
	id, _ := tokenID(token)
	doc := resetDoc{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if _, err := s.col(colPasswordResets).InsertOne(ctx, doc); err != nil {
		return "", time.Time{}, fmt.Errorf("reset link for %q: %w", u.Username, s.full(err))
	}
	return token, doc.ExpiresAt, nil
}

// ResetTokenUser returns the user a live token resets, or
// ErrResetInvalid; nothing is changed (the form is shown).
func (s *Store) ResetTokenUser(ctx context.Context, token string) (User, error) {
	_, u, err := s.resetToken(ctx, token)
	return u, err
}

func (s *Store) resetToken(ctx context.Context, token string) (resetDoc, User, error) {
	id, ok := tokenID(token)
	if !ok {
		return resetDoc{}, User{}, ErrResetInvalid
	}
	var doc resetDoc
	err := s.col(colPasswordResets).FindOne(ctx, d("_id", id)).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return resetDoc{}, User{}, ErrResetInvalid
	case err != nil:
		return resetDoc{}, User{}, fmt.Errorf("read reset link: %w", err)
	case !doc.ExpiresAt.After(s.now()):
		return resetDoc{}, User{}, ErrResetInvalid
	}
	u, err := s.UserByID(ctx, doc.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		return resetDoc{}, User{}, ErrResetInvalid
	case err != nil:
		return resetDoc{}, User{}, fmt.Errorf("reset link: %w", err)
	case !u.IsActive:
		return resetDoc{}, User{}, ErrResetInvalid
	}
	return doc, u, nil
}

// ResetPassword uses a token: the new password must keep the rules
// (FieldErrors{"password"}; the token stays valid), then the token is
// spent (ErrResetInvalid when it is unknown, expired or already spent,
// also by a racing use), the password is set, every session of the user
// ends and the user's lock-outs are lifted.
func (s *Store) ResetPassword(ctx context.Context, token, password string) (User, error) {
	doc, u, err := s.resetToken(ctx, token)
	if err != nil {
		return User{}, err
	}
	if msg := checkPassword(password, u.Username, u.Email); msg != "" {
		return User{}, FieldErrors{"password": msg}
	}
	res, err := s.col(colPasswordResets).DeleteOne(ctx, d("_id", doc.ID))
	if err != nil {
		return User{}, fmt.Errorf("spend reset link: %w", s.full(err))
	}
	if res.DeletedCount != 1 {
		return User{}, ErrResetInvalid
	}
	if err := s.setPassword(ctx, u, password, ""); err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	return u, nil
}
