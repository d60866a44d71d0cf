package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const schemaDocID = "schema"

// index is one index Migrate makes sure exists.
type index struct {
	collection string
	model      mongo.IndexModel
	// ttl marks an expires_at index that should delete documents when
	// they expire. FerretDB does not implement TTL indexes; there Migrate
	// creates a plain index instead and expiry relies on the checks in
	// code and the sweeps in CreateSession and recordFailure.
	ttl bool
}

func indexes() []index {
	return []index{
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    d("registration_no", 1),
			Options: options.Index().SetName("registration_no_unique").SetUnique(true),
		}},
		{collection: colUsers, model: mongo.IndexModel{
			Keys:    d("username_lower", 1),
			Options: options.Index().SetName("username_lower_unique").SetUnique(true),
		}},
		{collection: colSessions, model: mongo.IndexModel{
			Keys:    d("user_id", 1),
			Options: options.Index().SetName("user_id"),
		}},
		{collection: colSessions, ttl: true, model: mongo.IndexModel{Keys: d("expires_at", 1)}},
		{collection: colLoginFailures, ttl: true, model: mongo.IndexModel{Keys: d("expires_at", 1)}},
	}
}

// schemaVersion reads the recorded version; 0 means never migrated.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var doc struct {
		Version int `bson:"version"`
	}
	err := s.col(colMeta).FindOne(ctx, d("_id", schemaDocID)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version of %s: %w", s.DatabaseName(), err)
	}
	return doc.Version, nil
}

// Migrate creates collections and indexes and records SchemaVersion;
// idempotent. Returns the version before and after. A database migrated by
// a newer binary is left alone and ErrSchemaTooNew returned.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	from, err = s.schemaVersion(ctx)
	if err != nil {
		return 0, 0, err
	}
	if from > SchemaVersion {
		return from, from, fmt.Errorf("migrate %s: schema version %d, this binary knows %d: %w",
			s.DatabaseName(), from, SchemaVersion, ErrSchemaTooNew)
	}
	for _, ix := range indexes() {
		if err := s.createIndex(ctx, ix); err != nil {
			return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
		}
	}
	// $max never lowers the version, should a newer binary migrate at
	// the same time.
	_, err = s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID),
		d("$max", d("version", SchemaVersion)), options.UpdateOne().SetUpsert(true))
	if err != nil {
		return from, from, fmt.Errorf("migrate %s: record schema version: %w", s.DatabaseName(), err)
	}
	return from, SchemaVersion, nil
}

func (s *Store) createIndex(ctx context.Context, ix index) error {
	iv := s.col(ix.collection).Indexes()
	m := ix.model
	if ix.ttl {
		m.Options = options.Index().SetName("expires_at_ttl").SetExpireAfterSeconds(0)
		_, err := iv.CreateOne(ctx, m)
		if err == nil {
			return nil
		}
		if !isNotImplemented(err) {
			return fmt.Errorf("create TTL index on %s: %w", ix.collection, err)
		}
		m.Options = options.Index().SetName("expires_at")
	}
	if _, err := iv.CreateOne(ctx, m); err != nil {
		return fmt.Errorf("create index on %s: %w", ix.collection, err)
	}
	return nil
}

// isNotImplemented reports FerretDB's "NotImplemented" (code 238) error.
func isNotImplemented(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(238)
}

// CheckSchema returns nil when the database is at SchemaVersion, wrapping
// ErrNotMigrated or ErrSchemaTooNew otherwise.
func (s *Store) CheckSchema(ctx context.Context) error {
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case v < SchemaVersion:
		return fmt.Errorf("database %s has schema version %d, this binary needs %d: %w",
			s.DatabaseName(), v, SchemaVersion, ErrNotMigrated)
	case v > SchemaVersion:
		return fmt.Errorf("database %s has schema version %d, this binary knows %d: %w",
			s.DatabaseName(), v, SchemaVersion, ErrSchemaTooNew)
	}
	return nil
}
