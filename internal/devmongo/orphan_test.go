package devmongo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// cutDialer remembers the connections it dials so that a test can cut
// them all at once, as the kernel does when a process is SIGKILLed (a
// reset), and dials nothing afterwards.
type cutDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (c *cutDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, errors.New("the process is dead")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutDialer) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, conn := range c.conns {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// What FerretDB v1.24.2 does with a client that vanishes in the middle
// of a long update (docs/ARCHITECTURE.md, "A writer that dies"): it runs
// the command to its end (one SQLite transaction per document), so the
// dead client's rows keep changing after it is gone, and only then lets
// go; nothing is left holding the database's write lock afterwards.
// Meanwhile another database (another school: its own SQLite file) is
// not held up at all: its writes succeed at the first try while the dead
// client's command is still running.
func TestDeadClientsCommandRunsToItsEnd(t *testing.T) {
	ctx := t.Context()
	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := connect(t, s.URI())
	const n = 3000
	var docs []any
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: int64(i)}, {Key: "name", Value: fmt.Sprintf("student %d", i)}})
	}
	a := c.Database("school_a").Collection("students")
	b := c.Database("school_b").Collection("students")
	for _, col := range []*mongo.Collection{a, b} {
		if _, err := col.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	marked := func() int64 {
		t.Helper()
		m, err := a.CountDocuments(ctx, bson.D{{Key: "del", Value: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	dialer := &cutDialer{}
	dead, err := mongo.Connect(options.Client().ApplyURI(s.URI()).SetDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dead.Disconnect(context.Background()) })
	updated := make(chan error, 1)
	go func() {
		_, err := dead.Database("school_a").Collection("students").UpdateMany(ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "del", Value: 1}}}})
		updated <- err
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for marked() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the update never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dialer.cut()
	if err := <-updated; err == nil {
		t.Fatal("the update finished although its connection was cut")
	}
	atCut := marked()

	// Another school writes while the dead client's command runs on.
	for i := range 5 {
		if _, err := b.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(n + i)}}); err != nil {
			t.Errorf("school B insert: %v", err)
		}
	}
	if _, err := b.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: 50}}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}); err != nil {
		t.Errorf("school B update: %v", err)
	}
	if m := marked(); m == n {
		t.Fatalf("the dead client's command ended (%d rows) before school B had written: the test proves nothing; make n bigger", m)
	}

	// The command goes on to its end although nobody will read its answer.
	for m := marked(); m < n; m = marked() {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows marked at the cut, %d after %v", atCut, m, 2*time.Minute)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Then nothing holds school A's lock: a write gets in at its first try.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := a.InsertOne(wctx, bson.D{{Key: "_id", Value: int64(n)}}); err != nil {
		t.Errorf("school A insert after the dead client's command: %v", err)
	}
	t.Logf("%d of %d rows marked at the cut; the command marked all of them afterwards", atCut, n)
}
