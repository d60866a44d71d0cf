package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// tenantStampID is the meta document holding the database's tenant-ID
// stamp (store/schema.go); it is never archived nor restored.
const tenantStampID = "tenant"

// DumpOptions configure Dump.
type DumpOptions struct {
	// Tenant is the registry record archived in the header; its Database
	// must be the database given to Dump.
	Tenant registry.Tenant
	// Consistency: Snapshot requires a snapshot session (an error when the
	// server has none); Live reads without one; Suspended reads without
	// one and records that the caller suspended the tenant; "" uses a
	// snapshot when the server supports it, else Live.
	Consistency Consistency
	// CampusVersion is recorded in the header.
	CampusVersion string
	// BatchSize is the cursor batch size (default 1000).
	BatchSize int32
	// Fetched, when set, is incremented for every document read from the
	// database (tests use it to see that a backup streams).
	Fetched *atomic.Int64
}

// ErrNoSnapshot is returned for Consistency Snapshot on a server without
// snapshot reads (FerretDB, a standalone mongod).
var ErrNoSnapshot = errors.New("this MongoDB server has no snapshot reads (it is not a replica set, or it is FerretDB)")

// Dump writes the archive of db (the database of opts.Tenant) to w. It
// streams: documents go from the cursor to w one by one, whatever their
// number. The archive is complete only when Dump returns nil.
func Dump(ctx context.Context, db *mongo.Database, w io.Writer, opts DumpOptions) (Summary, error) {
	t := opts.Tenant
	if db.Name() != t.Database {
		return Summary{}, fmt.Errorf("backup of tenant %s: database %s is not its database %s", t.Name, db.Name(), t.Database)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	consistency := opts.Consistency
	if consistency == "" || consistency == Snapshot {
		ok, err := SnapshotSupported(ctx, db.Client())
		switch {
		case err != nil:
			return Summary{}, fmt.Errorf("backup of tenant %s: %w", t.Name, err)
		case ok:
			consistency = Snapshot
		case consistency == Snapshot:
			return Summary{}, fmt.Errorf("backup of tenant %s: %w", t.Name, ErrNoSnapshot)
		default:
			consistency = Live
		}
	}
	if consistency == Snapshot {
		sess, err := db.Client().StartSession(options.Session().SetSnapshot(true))
		if err != nil {
			return Summary{}, fmt.Errorf("backup of tenant %s: start snapshot session: %w", t.Name, err)
		}
		defer sess.EndSession(context.WithoutCancel(ctx))
		ctx = mongo.NewSessionContext(ctx, sess)
		db = db.Client().Database(db.Name(), options.Database().SetReadConcern(readconcern.Snapshot()))
	}

	schema, err := schemaVersion(ctx, db)
	if err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: %w", t.Name, err)
	}
	rec, err := json.Marshal(t)
	if err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: encode its record: %w", t.Name, err)
	}
	h := Header{
		Format: FormatName, Version: FormatVersion, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Tenant: rec, SchemaVersion: schema, Consistency: consistency, CampusVersion: opts.CampusVersion,
	}
	// What readers see of students and history: an import or bulk delete
	// not committed when the view is read is left out whole
	// (store/operations.go); read before the rows.
	ops, err := store.ReadOperations(ctx, db)
	if err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: %w", t.Name, err)
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: list collections of %s: %w", t.Name, db.Name(), err)
	}
	var keep []string
	for _, n := range names {
		if !Excluded(n) {
			keep = append(keep, n)
		}
	}
	keep = orderCollections(keep)

	enc := newEncoder(w)
	if err := enc.header(h); err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: write: %w", t.Name, err)
	}
	for _, name := range keep {
		if err := enc.collection(name); err != nil {
			return Summary{}, fmt.Errorf("backup of tenant %s: write: %w", t.Name, err)
		}
		filter := bson.D{}
		if name == "meta" {
			filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$ne", Value: tenantStampID}}}}
		}
		cur, err := db.Collection(name).Find(ctx, filter, options.Find().SetBatchSize(opts.BatchSize))
		if err != nil {
			return Summary{}, fmt.Errorf("backup of tenant %s: read %s: %w", t.Name, name, err)
		}
		for cur.Next(ctx) {
			if opts.Fetched != nil {
				opts.Fetched.Add(1)
			}
			doc, ok, err := ops.ResolveDocument(name, cur.Current)
			if err != nil {
				cur.Close(ctx)
				return Summary{}, fmt.Errorf("backup of tenant %s: %w", t.Name, err)
			}
			if !ok {
				continue
			}
			ext, err := bson.MarshalExtJSON(doc, true, false)
			if err != nil {
				cur.Close(ctx)
				return Summary{}, fmt.Errorf("backup of tenant %s: encode a document of %s: %w", t.Name, name, err)
			}
			if err := enc.doc(ext); err != nil {
				cur.Close(ctx)
				return Summary{}, fmt.Errorf("backup of tenant %s: write: %w", t.Name, err)
			}
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return Summary{}, fmt.Errorf("backup of tenant %s: read %s: %w", t.Name, name, err)
		}
	}
	tr, err := enc.close()
	if err != nil {
		return Summary{}, fmt.Errorf("backup of tenant %s: write: %w", t.Name, err)
	}
	return Summary{Header: h, Tenant: t, Collections: keep, Trailer: tr}, nil
}

// schemaVersion reads the schema version the store recorded (0: none).
func schemaVersion(ctx context.Context, db *mongo.Database) (int, error) {
	var doc struct {
		Version int `bson:"version"`
	}
	err := db.Collection("meta").FindOne(ctx, bson.D{{Key: "_id", Value: "schema"}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version of %s: %w", db.Name(), err)
	}
	return doc.Version, nil
}

// SnapshotSupported reports whether the server offers snapshot reads: a
// MongoDB replica set member or mongos (not FerretDB, which answers
// "hello" like a replica set member in some setups but has no snapshots).
func SnapshotSupported(ctx context.Context, client *mongo.Client) (bool, error) {
	var build bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&build); err != nil {
		return false, fmt.Errorf("ask the server what it is (buildInfo): %w", err)
	}
	if _, ferret := build["ferretdb"]; ferret {
		return false, nil
	}
	if _, ferret := build["ferretdbVersion"]; ferret {
		return false, nil
	}
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return false, fmt.Errorf("ask the server what it is (hello): %w", err)
	}
	return hello.SetName != "" || hello.Msg == "isdbgrid", nil
}
