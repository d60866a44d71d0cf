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
// the caller drops db. Load writes into db alone. Reading and parsing run
// in one goroutine, inserting in another, so that the two overlap.
func Load(ctx context.Context, r io.Reader, db *mongo.Database, opts LoadOptions) (Summary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	d, err := newDecoder(r)
	if err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A batch of one collection; docs may be empty for an empty one.
	type batch struct {
		collection string
		create     bool
		docs       []any
	}
	batches := make(chan batch, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		send := func(b batch) bool {
			select {
			case batches <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		cur := batch{}
		for {
			ext, err := d.next()
			if errors.Is(err, io.EOF) {
				if cur.collection != "" {
					send(cur)
				}
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
			if d.cur != cur.collection {
				if cur.collection != "" && !send(cur) {
					readErr <- ctx.Err()
					return
				}
				// An empty collection is restored as an empty collection.
				cur = batch{collection: d.cur, create: true}
			}
			if ext == nil {
				continue
			}
			raw, err := parseDoc(d.cur, ext)
			if err != nil {
				readErr <- corrupt(d.lineNo, "%v", err)
				return
			}
			cur.docs = append(cur.docs, raw)
			if len(cur.docs) == opts.BatchSize {
				if !send(cur) {
					readErr <- ctx.Err()
					return
				}
				cur = batch{collection: d.cur}
			}
		}
	}()
	var writeErr error
	for b := range batches {
		if writeErr != nil {
			continue // drain, then report
		}
		if b.create {
			if err := db.CreateCollection(ctx, b.collection); err != nil {
				writeErr = fmt.Errorf("restore into %s: create collection %s: %w", db.Name(), b.collection, err)
				cancel()
				continue
			}
		}
		if len(b.docs) == 0 {
			continue
		}
		if opts.BeforeBatch != nil {
			if err := opts.BeforeBatch(b.collection, len(b.docs)); err != nil {
				writeErr = err
				cancel()
				continue
			}
		}
		if _, err := db.Collection(b.collection).InsertMany(ctx, b.docs, options.InsertMany().SetOrdered(true)); err != nil {
			writeErr = fmt.Errorf("restore into %s: insert into %s: %w", db.Name(), b.collection, err)
			cancel()
		}
	}
	rerr := <-readErr
	if writeErr != nil {
		return Summary{}, writeErr
	}
	if rerr != nil {
		return Summary{}, rerr
	}
	return d.summary(), nil
}
