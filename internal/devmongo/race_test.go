package devmongo

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestDropAndCreateWhileIndexing drops and re-creates databases of the same
// names, as `tenant purge` then `tenant create` or `tenant restore` do,
// while the id indexer looks over the data folder without pause. A drop
// that lands while the indexer holds a file open must neither corrupt the
// database created next under that name nor leave an empty file behind.
func TestDropAndCreateWhileIndexing(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := connect(t, s.URI())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var warnings lockedBuffer
	ix := &idIndexer{dir: dir, logger: slog.New(slog.NewTextHandler(&warnings, nil)), seen: map[string]time.Time{}, gate: s.relay.gate}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ix.seen = map[string]time.Time{} // every file, every pass
			ix.pass(ctx)
		}
	}()
	defer func() {
		if stop != nil {
			close(stop)
			wg.Wait()
		}
	}()

	for round := range 100 {
		for i := range 3 {
			db := c.Database(fmt.Sprintf("school%d", i))
			docs := make([]any, 200)
			for k := range docs {
				docs[k] = bson.D{{Key: "_id", Value: fmt.Sprintf("r%d-%d", round, k)}, {Key: "name", Value: "Amina"}}
			}
			for _, coll := range []string{"students", "history"} {
				if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
					t.Fatalf("round %d: insert into %s.%s: %v", round, db.Name(), coll, err)
				}
			}
			n, err := db.Collection("students").CountDocuments(ctx, bson.D{})
			if err != nil || n != 200 {
				t.Fatalf("round %d: %s has %d students (%v), want the 200 just written", round, db.Name(), n, err)
			}
			if err := db.Drop(ctx); err != nil {
				t.Fatalf("round %d: drop %s: %v", round, db.Name(), err)
			}
		}
	}
	names, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Fatalf("databases left after every one was dropped: %v", names)
	}
	close(stop)
	wg.Wait()
	stop = nil
	if left, _ := filepath.Glob(filepath.Join(dir, "*.sqlite*")); len(left) != 0 {
		t.Fatalf("files left after every database was dropped: %v", left)
	}
	if w := warnings.String(); w != "" {
		t.Fatalf("the indexer warned:\n%s", w)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
