package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const schemaDocID = "schema"

// tenantDocID is the meta document that stamps the database with the ID
// of the registry tenant it belongs to: {_id: "tenant", tenant_id: ID}.
// It is inserted once and never changed, so that a database can never be
// served, migrated or managed for another tenant, not even one created
// later under the same name.
const tenantDocID = "tenant"

// ErrWrongTenant means the database is stamped with another tenant's ID;
// errors.As gives the *TenantMismatchError.
var ErrWrongTenant = errors.New("database belongs to another tenant")

// ErrNotStamped means the database carries no tenant ID yet: a database
// from before tenant IDs, or never migrated. MigrateTenant stamps it.
var ErrNotStamped = errors.New("database is not stamped with a tenant ID; run `campus manage TENANT migrate`")

// TenantMismatchError names both IDs.
type TenantMismatchError struct {
	Database string
	Want     string // the tenant the caller serves
	Got      string // the tenant the database is stamped for
}

func (e *TenantMismatchError) Error() string {
	return fmt.Sprintf("database %s is stamped for tenant ID %s, not for tenant ID %s: it belongs to another tenant (perhaps an earlier tenant of the same name)",
		e.Database, e.Got, e.Want)
}

// Is makes errors.Is(err, ErrWrongTenant) true.
func (e *TenantMismatchError) Is(target error) bool { return target == ErrWrongTenant }

// stampDoc is the tenant document: the stamp, and the layout of the last
// migration that completed (migrationLayout, layout.go).
type stampDoc struct {
	TenantID string `bson:"tenant_id"`
	Layout   string `bson:"layout,omitempty"`
}

// readStamp reads the tenant document; an unstamped database gives a
// zero one.
func (s *Store) readStamp(ctx context.Context) (stampDoc, error) {
	var doc stampDoc
	err := s.col(colMeta).FindOne(ctx, d("_id", tenantDocID)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return stampDoc{}, nil
	}
	if err != nil {
		return stampDoc{}, fmt.Errorf("read tenant ID of %s: %w", s.DatabaseName(), err)
	}
	return doc, nil
}

// TenantID returns the tenant ID the database is stamped with, or "".
func (s *Store) TenantID(ctx context.Context) (string, error) {
	doc, err := s.readStamp(ctx)
	return doc.TenantID, err
}

// CheckTenant returns nil when the database is stamped with tenantID, a
// *TenantMismatchError when it is stamped with another, and an error
// wrapping ErrNotStamped when it is not stamped.
func (s *Store) CheckTenant(ctx context.Context, tenantID string) error {
	_, err := s.checkStamp(ctx, tenantID)
	return err
}

// checkStamp is CheckTenant, giving the tenant document it read.
func (s *Store) checkStamp(ctx context.Context, tenantID string) (stampDoc, error) {
	if tenantID == "" {
		return stampDoc{}, errors.New("check tenant: empty tenant ID")
	}
	doc, err := s.readStamp(ctx)
	switch {
	case err != nil:
		return stampDoc{}, err
	case doc.TenantID == "":
		return doc, fmt.Errorf("database %s: %w", s.DatabaseName(), ErrNotStamped)
	case doc.TenantID != tenantID:
		return doc, &TenantMismatchError{Database: s.DatabaseName(), Want: tenantID, Got: doc.TenantID}
	}
	return doc, nil
}

// stamp records tenantID in an unstamped database, or checks the stamp.
// The insert is atomic (unique _id), so two processes stamping one database
// with different IDs cannot both succeed.
func (s *Store) stamp(ctx context.Context, tenantID string) error {
	_, err := s.col(colMeta).InsertOne(ctx, bson.D{{Key: "_id", Value: tenantDocID}, {Key: "tenant_id", Value: tenantID}})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("stamp %s with tenant ID: %w", s.DatabaseName(), err)
	}
	return s.CheckTenant(ctx, tenantID)
}

// MigrateTenant is Migrate for the tenant with ID tenantID: a database
// stamped for another tenant is refused before anything is written
// (*TenantMismatchError); an unstamped one (new, or from before tenant
// IDs) is stamped with tenantID first. A migration that completed is
// recorded in the stamp (its layout), for StartTenant.
func (s *Store) MigrateTenant(ctx context.Context, tenantID string) (from, to int, err error) {
	if tenantID == "" {
		return 0, 0, errors.New("migrate: empty tenant ID")
	}
	doc, err := s.checkStamp(ctx, tenantID)
	switch {
	case errors.Is(err, ErrNotStamped):
		if err := s.stamp(ctx, tenantID); err != nil {
			return 0, 0, fmt.Errorf("migrate: %w", err)
		}
	case err != nil:
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	if from, to, err = s.Migrate(ctx); err != nil {
		return from, to, err
	}
	if err := s.recordLayout(ctx, tenantID, doc.Layout); err != nil {
		return from, to, fmt.Errorf("migrate: %w", err)
	}
	return from, to, nil
}

// Empty reports whether the database has no collections at all: nobody
// has written to it (or it does not exist yet).
func (s *Store) Empty(ctx context.Context) (bool, error) {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return false, fmt.Errorf("list collections of %s: %w", s.DatabaseName(), err)
	}
	return len(names) == 0, nil
}

// index is one index Migrate makes sure exists.
type index struct {
	collection string
	model      mongo.IndexModel
	// ttl marks an expires_at index that should delete documents when
	// they expire. FerretDB does not implement TTL indexes; there Migrate
	// creates a plain index instead and expiry relies on the checks in
	// code and the sweeps in CreateSession and recordFailure.
	ttl bool
	// onlyIndexing marks an index that serves queries only (no
	// uniqueness): not made where reads go to the read model.
	onlyIndexing bool
}

func indexes() []index {
	return append([]index{
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    d("registration_no", 1),
			Options: options.Index().SetName("registration_no_unique").SetUnique(true),
		}},
		// Schema 2: one index per sort order of the lists (the _id
		// tie-break included, so that MongoDB sorts by walking the index)
		// and one on the search field, which MongoDB scans instead of the
		// documents for a regex. The unique index on registration_no_key
		// is made by createRegNoKeyIndex.
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    bson.D{{Key: fieldRegNoKey, Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("registration_no_key_id"),
		}, onlyIndexing: true},
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    bson.D{{Key: fieldFirstNameKey, Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("first_name_key_id"),
		}, onlyIndexing: true},
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    bson.D{{Key: fieldSecondNameKey, Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("second_name_key_id"),
		}, onlyIndexing: true},
		{collection: colStudents, model: mongo.IndexModel{
			Keys:    d(fieldSearch, 1),
			Options: options.Index().SetName("search"),
		}, onlyIndexing: true},
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
	}, append(append(staffHistoryIndexes(), groupsIndexes()...), filterIndexes()...)...) // schema_staff.go, permissions.go, record.go
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

// Migrate converts old documents (migrate_v2.go), creates collections and
// indexes and records SchemaVersion; idempotent, and a run that stopped
// midway is finished by the next. It does not stamp the database with a
// tenant ID; commands serving a registry tenant use MigrateTenant. Returns
// the version before and after. A database migrated by a newer binary is
// left alone and ErrSchemaTooNew returned.
//
// Students whose registration numbers differ only in case do not fail the
// migration: everything is migrated and the version recorded (the app
// serves), and the error returned wraps ErrRegNoConflicts with the report
// (*RegNoConflictError); callers that serve log it and go on, `campus
// manage T migrate` prints it and exits non-zero. The next Migrate, once
// the conflicts are resolved, creates the missing unique index.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	from, err = s.schemaVersion(ctx)
	if err != nil {
		return 0, 0, err
	}
	if from > SchemaVersion {
		return from, from, fmt.Errorf("migrate %s: schema version %d, this binary knows %d: %w",
			s.DatabaseName(), from, SchemaVersion, ErrSchemaTooNew)
	}
	if err := s.createCollections(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	// Once per database (one look-up in meta after): the imports from
	// before the references get theirs (historyrefs.go).
	if err := s.backfillImportRefs(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	if from == SchemaVersion {
		// Every app start migrates: a current database must cost a few
		// metadata look-ups, not a pass over its students (on FerretDB
		// each of the steps below reads the whole collection).
		complete, err := s.indexesComplete(ctx)
		if err != nil {
			return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
		}
		keyed := false // every student has its class key (a copy of the students made it)
		if complete {
			if keyed, err = s.classKeyed(ctx); err != nil {
				return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
			}
		}
		if complete && keyed {
			return from, from, nil
		}
	}
	if err := s.migrateStudentsV2(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	// After it: its copy writes string _ids already (migrate_v4.go).
	if err := s.migrateStudentIDs(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID),
		d("$set", d(classKeysField, true)), options.UpdateOne().SetUpsert(true)); err != nil {
		return from, from, fmt.Errorf("migrate %s: record the class keys: %w", s.DatabaseName(), err)
	}
	if from < 3 {
		s.journal(ctx, journalEntry{Kind: entryReload}, nil)
	}
	// Staff roles, history, resets (schema_staff.go).
	if err := s.migrateStaffRoles(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	// Groups of permissions (permissions.go): a database of this version
	// from before groups lacks the groups index, so indexesComplete sends
	// it through here once.
	if err := s.migrateUserGroups(ctx); err != nil {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
	}
	for _, ix := range indexes() {
		if ix.onlyIndexing && s.useModel(ctx) {
			continue // FerretDB would only maintain it, never use it
		}
		if err := s.createIndex(ctx, ix); err != nil {
			return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), err)
		}
	}
	conflicts := s.createRegNoKeyIndex(ctx)
	if conflicts != nil && !errors.Is(conflicts, ErrRegNoConflicts) {
		return from, from, fmt.Errorf("migrate %s: %w", s.DatabaseName(), conflicts)
	}
	// $max never lowers the version, should a newer binary migrate at
	// the same time.
	_, err = s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID),
		d("$max", d("version", SchemaVersion)), options.UpdateOne().SetUpsert(true))
	if err != nil {
		return from, from, fmt.Errorf("migrate %s: record schema version: %w", s.DatabaseName(), err)
	}
	if conflicts != nil {
		return from, SchemaVersion, fmt.Errorf("migrate: %w", conflicts)
	}
	return from, SchemaVersion, nil
}

// indexesComplete reports whether every index Migrate makes exists, by
// name (the version is recorded only after the rest of the migration,
// so a current version with every index means nothing is left to do).
// A change to indexes() therefore needs no new schema version: a missing
// index sends the next start through the whole migration.
func (s *Store) indexesComplete(ctx context.Context) (bool, error) {
	for col, names := range s.wantedIndexes(ctx) {
		specs, err := s.col(col).Indexes().ListSpecifications(ctx)
		if err != nil {
			return false, fmt.Errorf("list indexes of %s: %w", col, err)
		}
		have := map[string]bool{}
		for _, sp := range specs {
			have[strings.TrimSuffix(sp.Name, "_ttl")] = true
		}
		for _, n := range names {
			if !have[n] {
				return false, nil
			}
		}
	}
	return true, nil
}

// wantedIndexes are the names of the indexes Migrate makes, by collection.
func (s *Store) wantedIndexes(ctx context.Context) map[string][]string {
	want := map[string][]string{colStudents: {regNoKeyIndex}}
	for _, ix := range indexes() {
		if ix.onlyIndexing && s.useModel(ctx) {
			continue
		}
		name := "expires_at" // a TTL index is this or expires_at_ttl (createIndex)
		if !ix.ttl {
			name = indexName(ix.model.Options)
		}
		want[ix.collection] = append(want[ix.collection], name)
	}
	return want
}

// indexName is the name an index's options set.
func indexName(b *options.IndexOptionsBuilder) string {
	var o options.IndexOptions
	for _, set := range b.List() {
		_ = set(&o)
	}
	if o.Name == nil {
		return ""
	}
	return *o.Name
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

// unindexedCollections are the collections no index of indexes() makes:
// created by createCollections, not by their first write.
var unindexedCollections = []string{colCounters, colMeta, colOperations, colJournal, colSnapshot,
	colIDClaims, colHistoryChain, colHistoryNames, colHistorySlots}

// createCollections creates the collections without an index that do not
// exist yet (one listCollections when all do). On FerretDB creating a
// collection holds its metadata registry's mutex, shared by every
// database, while it writes to the school's file: done at migration, a
// school whose file a dead writer keeps locked (docs/ARCHITECTURE.md, "A
// writer that dies") never holds the other schools' queries up by a
// first write. Idempotent: a creation racing another is fine.
func (s *Store) createCollections(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range unindexedCollections {
		if slices.Contains(names, name) {
			continue
		}
		if err := s.db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("create collection %s: %w", name, err)
		}
	}
	return nil
}

// isNamespaceExists reports the "NamespaceExists" (code 48) error of a
// collection created twice.
func isNamespaceExists(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(48)
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
