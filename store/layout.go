package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A start of a tenant's app migrates its database (`campus app
// --migrate`, as the supervisor starts apps). Migrate of a current
// database checks every collection and index: about fifteen commands, each
// of which the embedded FerretDB answers by copying its metadata. So a
// migration that completed records its layout in the database's stamp
// document, and the next start of a binary with the same layout reads the
// stamp and the schema version only, and writes nothing.
//
// The stamp document is never archived (backup), so a restored database
// has no layout and is migrated in full; a binary with other indexes,
// collections or one-time steps has another layout and checks them all
// once. An index or collection dropped by hand is made again by `campus
// manage TENANT migrate` (MigrateTenant checks everything).

// migrationLayout names what a complete migration by this binary leaves
// in the database: its schema version, indexes and collections, and the
// one-time steps that a database of the current version may still lack.
// A new such step must add its name here.
func (s *Store) migrationLayout(ctx context.Context) string {
	var parts []string
	for col, names := range s.wantedIndexes(ctx) {
		for _, n := range names {
			parts = append(parts, "index "+col+"."+n)
		}
	}
	for _, c := range unindexedCollections {
		parts = append(parts, "collection "+c)
	}
	parts = append(parts, "step "+classKeysField, "step "+importRefsDocID)
	slices.Sort(parts)
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%d-%016x", SchemaVersion, h.Sum64())
}

// recordLayout records this binary's layout in the stamp of tenantID,
// unless had (the layout read before the migration) is it already.
func (s *Store) recordLayout(ctx context.Context, tenantID, had string) error {
	layout := s.migrationLayout(ctx)
	if had == layout {
		return nil
	}
	_, err := s.col(colMeta).UpdateOne(ctx, bson.D{{Key: "_id", Value: tenantDocID}, {Key: "tenant_id", Value: tenantID}}, d("$set", d("layout", layout)))
	if err != nil {
		return fmt.Errorf("record the migration of %s: %w", s.DatabaseName(), err)
	}
	return nil
}

// StartTenant is MigrateTenant at the start of the tenant's app: a
// database stamped for tenantID whose stamp records this binary's layout
// costs two look-ups (the stamp, and the schema version, which a newer
// binary may have raised since) and no write. Any other database goes
// through MigrateTenant; an unstamped one only once unstamped, when not
// nil, has let it (its error stops the start, nothing written).
func (s *Store) StartTenant(ctx context.Context, tenantID string, unstamped func() error) (from, to int, err error) {
	if tenantID == "" {
		return 0, 0, errors.New("migrate: empty tenant ID")
	}
	doc, err := s.readStamp(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	if doc.TenantID == "" && unstamped != nil {
		if err := unstamped(); err != nil {
			return 0, 0, err
		}
	}
	if doc.TenantID == tenantID && doc.Layout == s.migrationLayout(ctx) {
		v, err := s.schemaVersion(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("migrate: %w", err)
		}
		if v == SchemaVersion {
			return v, v, nil
		}
	}
	return s.MigrateTenant(ctx, tenantID)
}
