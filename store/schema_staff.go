package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The staff schema step (SchemaVersion 2 on this branch; it runs at every
// Migrate, so its number may change in a merge): staff roles, the history
// of students and one-time password reset tokens. New collections: history
// (history.go; back it up) and password_resets (resets.go; short-lived
// secrets, like sessions and login_failures, need no backup).
//
//   - users get is_active; users from version 1 (all superusers) become
//     active. The step is idempotent: it only touches users without the
//     field.
//   - history: indexed by time (recent actions) and by student (a
//     student's history page).
//   - password_resets: _id is the SHA-256 of the token; indexed by user
//     (a used or superseded token ends the user's others) and by expiry.

func staffHistoryIndexes() []index {
	return []index{
		{collection: colHistory, model: mongo.IndexModel{
			Keys:    d("at", -1),
			Options: options.Index().SetName("at"),
		}},
		{collection: colHistory, model: mongo.IndexModel{
			Keys:    d("student_id", 1),
			Options: options.Index().SetName("student_id"),
		}},
		// An operation's entries (the history page's filter by
		// operation, a student's legacy import: historyrefs.go).
		{collection: colHistory, model: mongo.IndexModel{
			Keys:    d("op", 1),
			Options: options.Index().SetName("op"),
		}, onlyIndexing: true},
		{collection: colPasswordResets, model: mongo.IndexModel{
			Keys:    d("user_id", 1),
			Options: options.Index().SetName("user_id"),
		}},
		{collection: colPasswordResets, ttl: true, model: mongo.IndexModel{Keys: d("expires_at", 1)}},
	}
}

// migrateStaffRoles makes every user from before roles active.
func (s *Store) migrateStaffRoles(ctx context.Context) error {
	_, err := s.col(colUsers).UpdateMany(ctx, d("is_active", d("$exists", false)), d("$set", d("is_active", true)))
	if err != nil {
		return fmt.Errorf("mark existing users active: %w", err)
	}
	return nil
}
