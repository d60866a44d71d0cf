package backup

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// parseDoc turns one archived document back into BSON and checks it
// against the rules of a restore.
func parseDoc(collection string, ext []byte) (bson.Raw, error) {
	var raw bson.Raw
	if err := bson.UnmarshalExtJSON(ext, true, &raw); err != nil {
		return nil, fmt.Errorf("document of %s: %v", collection, err)
	}
	if collection == "meta" {
		if id, err := raw.LookupErr("_id"); err == nil {
			if s, ok := id.StringValueOK(); ok && s == tenantStampID {
				return nil, errors.New("meta holds a tenant-ID stamp; archives never carry one")
			}
		}
	}
	return raw, nil
}

func checkDoc(collection string, ext []byte) error {
	_, err := parseDoc(collection, ext)
	return err
}

// LoadOptions configure Load.
type LoadOptions struct {
	// BatchSize is the number of documents per insert (default 1000).
	BatchSize int
	// BeforeBatch, when set, runs before each insert (tests use it to fail
	// a restore half-way).
	BeforeBatch func(collection string, n int) error
}

// Load writes the documents of an archive into db, which the caller has
// checked is a new, empty database, and returns the archive's summary.
// It verifies the archive again as it goes (the file may have changed
// since Verify); on any error some documents may have been written, and
// the caller drops db. Load writes into db alone.
func Load(ctx context.Context, r io.Reader, db *mongo.Database, opts LoadOptions) (Summary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	d, err := newDecoder(r)
	if err != nil {
		return Summary{}, err
	}
	batch := make([]any, 0, opts.BatchSize)
	batchOf := ""
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if opts.BeforeBatch != nil {
			if err := opts.BeforeBatch(batchOf, len(batch)); err != nil {
				return err
			}
		}
		if _, err := db.Collection(batchOf).InsertMany(ctx, batch, options.InsertMany().SetOrdered(true)); err != nil {
			return fmt.Errorf("restore into %s: insert into %s: %w", db.Name(), batchOf, err)
		}
		batch = batch[:0]
		return nil
	}
	for {
		ext, err := d.next()
		if errors.Is(err, io.EOF) {
			if err := flush(); err != nil {
				return Summary{}, err
			}
			return d.summary(), nil
		}
		if err != nil {
			return Summary{}, err
		}
		if d.cur != batchOf {
			if err := flush(); err != nil {
				return Summary{}, err
			}
			batchOf = d.cur
			// An empty collection is restored as an empty collection.
			if err := db.CreateCollection(ctx, d.cur); err != nil {
				return Summary{}, fmt.Errorf("restore into %s: create collection %s: %w", db.Name(), d.cur, err)
			}
		}
		if ext == nil {
			continue
		}
		raw, err := parseDoc(d.cur, ext)
		if err != nil {
			return Summary{}, corrupt(d.lineNo, "%v", err)
		}
		batch = append(batch, raw)
		if len(batch) == opts.BatchSize {
			if err := flush(); err != nil {
				return Summary{}, err
			}
		}
	}
}
