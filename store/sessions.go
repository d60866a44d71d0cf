package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

const tokenBytes = 32

// sessionDoc is a session as stored. _id is the hex SHA-256 of the
// browser's token; the token itself is never stored.
type sessionDoc struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	Username  string    `bson:"username"`
	CSRFToken string    `bson:"csrf_token"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

func newToken() string {
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenID returns the stored id of a browser token, and false for strings
// that cannot be tokens (no database round trip for those).
func tokenID(token string) (string, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]), true
}

// CreateSession starts a session for u and returns the browser token
// (32 random bytes, base64url) with a fresh CSRF token; it expires after
// Options.SessionTTL.
func (s *Store) CreateSession(ctx context.Context, u User) (token string, sess Session, err error) {
	if u.ID == "" {
		return "", Session{}, errors.New("create session: user has no id")
	}
	now := s.now()
	// Sweep expired sessions: the TTL index deletes them lazily on
	// MongoDB and not at all on FerretDB. Best effort.
	_, _ = s.col(colSessions).DeleteMany(ctx, d("expires_at", d("$lte", now)))

	token = newToken()
	id, _ := tokenID(token)
	doc := sessionDoc{ID: id, UserID: u.ID, Username: u.Username, CSRFToken: newToken(),
		CreatedAt: now, ExpiresAt: now.Add(s.opts.SessionTTL)}
	if _, err := s.col(colSessions).InsertOne(ctx, doc); err != nil {
		return "", Session{}, fmt.Errorf("create session for %q: %w", u.Username, s.full(err))
	}
	sess = doc.session()
	sess.IsSuperuser = u.IsSuperuser
	if sess.Perms, err = s.PermsOf(ctx, u); err != nil {
		return "", Session{}, fmt.Errorf("create session for %q: %w", u.Username, err)
	}
	return token, sess, nil
}

func (doc sessionDoc) session() Session {
	return Session{UserID: doc.UserID, Username: doc.Username, CSRFToken: doc.CSRFToken, ExpiresAt: doc.ExpiresAt}
}

// Session looks a token up; unknown or expired tokens, and tokens of a
// user who is gone or inactive, give ErrNotFound. The role comes from the
// user as it is now, and so do the permissions (the user's groups).
func (s *Store) Session(ctx context.Context, token string) (Session, error) {
	id, ok := tokenID(token)
	if !ok {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	var doc sessionDoc
	err := s.col(colSessions).FindOne(ctx, d("_id", id)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	if !doc.ExpiresAt.After(s.now()) {
		return Session{}, fmt.Errorf("session: expired: %w", ErrNotFound)
	}
	u, err := s.UserByID(ctx, doc.UserID)
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	if !u.IsActive {
		return Session{}, fmt.Errorf("session: user is inactive: %w", ErrNotFound)
	}
	sess := doc.session()
	sess.IsSuperuser = u.IsSuperuser
	if sess.Perms, err = s.PermsOf(ctx, u); err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	return sess, nil
}

// endSessions deletes every session of a user except the one whose stored
// id is keep ("" for none).
func (s *Store) endSessions(ctx context.Context, userID, keep string) error {
	filter := bson.D{{Key: "user_id", Value: userID}}
	if keep != "" {
		filter = append(filter, bson.E{Key: "_id", Value: d("$ne", keep)})
	}
	if _, err := s.col(colSessions).DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("end sessions: %w", s.full(err))
	}
	return nil
}

// DeleteSession ends a session; unknown tokens are not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	id, ok := tokenID(token)
	if !ok {
		return nil
	}
	if _, err := s.col(colSessions).DeleteOne(ctx, d("_id", id)); err != nil {
		return fmt.Errorf("delete session: %w", s.full(err))
	}
	return nil
}
