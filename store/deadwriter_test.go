package store

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

	"github.com/campus-saas/campus/internal/mongotest"
)

// cutDialer remembers the connections it dials so that a test can cut
// them all at once, as the kernel does when a process is SIGKILLed: the
// server sees a reset, and whatever command it is running has no client.
// After the cut it dials nothing (the process is gone).
type cutDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (c *cutDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead { // a killed process dials nothing more
		return nil, errors.New("the process is dead")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *cutDialer) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, conn := range c.conns {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a polite close
		}
		_ = conn.Close()
	}
}

// A writer killed in the middle of a bulk delete leaves its last command
// running in the database server: FerretDB v1 notices a vanished client
// only when it answers, and its SQLite backend updates one row per
// transaction, each one holding the school's write lock. The command a
// dead writer leaves behind must be short (a few hundred row updates, not
// the whole delete), and once it has ended the school's next writer (the
// restarted app: its recovery, then ordinary writes) gets every write in
// at its first try: nothing is left holding the lock.
func TestDeadWritersBulkDeleteLeavesLittleRunning(t *testing.T) {
	ctx := t.Context()
	db := mongotest.Database(t)
	seed := New(db, Options{QueryTimeout: 2 * time.Minute})
	if _, _, err := seed.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	rows := make([]StudentInput, n)
	lines := make([]int, n)
	for i := range rows {
		rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("D%05d", i), FirstName: "Dead", SecondName: fmt.Sprintf("Writer %d", i)}
		lines[i] = i + 2
	}
	if added, _, err := seed.ImportStudents(ctx, rows, lines); err != nil || added != n {
		t.Fatalf("seed: %d added, %v", added, err)
	}
	cur, err := db.Collection(colStudents).Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID int64 `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}

	// The writer: its own client, whose connections the test cuts.
	dialer := &cutDialer{}
	wc, err := mongo.Connect(options.Client().ApplyURI(mongotest.URI(t)).SetDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Disconnect(context.Background()) })
	w := New(wc.Database(db.Name()), Options{QueryTimeout: 2 * time.Minute})
	w.fakeOwner = deadOwner
	deleted := make(chan error, 1)
	go func() {
		_, err := w.DeleteStudents(ctx, ids, Actor{Username: "killed"})
		deleted <- err
	}()

	// Cut its connections once the server is marking rows for it.
	marked := func() int64 {
		t.Helper()
		m, err := db.Collection(colStudents).CountDocuments(ctx, bson.D{{Key: "del", Value: bson.D{{Key: "$exists", Value: true}}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	deadline := time.Now().Add(2 * time.Minute)
	for marked() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the delete never started marking rows")
		}
	}
	dialer.cut()
	cutAt := time.Now()
	atCut := marked()
	if err := <-deleted; err == nil {
		t.Fatal("the delete finished although its connections were cut")
	}

	// The server goes on with the command in flight, and ends it at the
	// end of one command's rows: a multiple of markBatch, or all of them.
	final := atCut
	for {
		final = marked()
		if final == n || (final > atCut && final%markBatch == 0) || (final == atCut && atCut%markBatch == 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows marked when cut, still %d after %v: the dead writer's command runs on", atCut, final, time.Since(cutAt).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond) // polling (a count scans the table), not deciding anything
	}
	t.Logf("%d rows marked when cut, %d when its command ended, %v later", atCut, final, time.Since(cutAt).Round(time.Millisecond))
	if after := final - atCut; after > 250 {
		t.Errorf("the dead writer's command went on marking %d rows after its client was gone; at most 250 wanted", after)
	}

	// The next writer of the school: recovery, then ordinary writes, each
	// at its first try.
	r := New(db, Options{QueryTimeout: 2 * time.Minute})
	start := time.Now()
	if _, err := r.RecoverOperations(ctx); err != nil {
		t.Errorf("recover: %v", err)
	}
	for i := range 5 {
		if _, err := r.CreateStudent(ctx, StudentInput{RegistrationNo: fmt.Sprintf("N%d", i), FirstName: "Next", SecondName: "Writer"}); err != nil {
			t.Errorf("create: %v", err)
		}
	}
	t.Logf("recovery and 5 writes took %v", time.Since(start).Round(time.Millisecond))
	if got := count(t, r); got != n+5 {
		t.Errorf("%d students, want %d: the interrupted delete must delete none", got, n+5)
	}
}

// A dead writer's last command can land after the next writer rolled its
// operation back (FerretDB runs it to its end): here a late insert batch
// of an interrupted import. Its rows carry the rolled-back operation's
// number, so no reader sees them; once the record is old enough to be
// pruned they are removed (a second undo), never shown.
func TestLateRowsOfARolledBackOperationStayHidden(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	db := mongotest.Database(t)
	opts := Options{QueryTimeout: 2 * time.Minute, Now: clk.Now}
	if _, _, err := New(db, opts).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	crashAt(t, db, "commit", func(s *Store) {
		_, _, _ = s.ImportStudents(ctx, []StudentInput{{RegistrationNo: "R1", FirstName: "Rolled", SecondName: "Back"}}, []int{2})
	})
	if _, err := New(db, opts).RecoverOperations(ctx); err != nil {
		t.Fatal(err)
	}
	var rec opRecord
	if err := db.Collection(colOperations).FindOne(ctx, bson.D{{Key: "kind", Value: opImport}}).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	// The late batch: rows of the range the import reserved.
	late := bson.D{{Key: "ins", Value: rec.Seq}}
	raw, err := bson.Marshal(newStudentDoc(Student{ID: rec.First, RegistrationNo: "LATE1", FirstName: "Late", SecondName: "Row"}))
	if err != nil {
		t.Fatal(err)
	}
	var doc bson.D
	if err := bson.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colStudents).InsertOne(ctx, append(doc, late...)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		o := opts
		o.ReadModel = mode
		if got := register(t, New(db, o)); len(got) != 0 {
			t.Errorf("read model mode %d: readers see %q, want none", mode, got)
		}
	}
	// A later operation, then a day and more: closed records are pruned,
	// a rolled-back one after its undo is run once more.
	if added, _, err := New(db, opts).ImportStudents(ctx, []StudentInput{{RegistrationNo: "K1", FirstName: "Kept", SecondName: "Row"}}, []int{2}); err != nil || added != 1 {
		t.Fatalf("import: %d, %v", added, err)
	}
	clk.Advance(opKeepClosed + time.Hour)
	if _, err := New(db, opts).RecoverOperations(ctx); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		o := opts
		o.ReadModel = mode
		if got := register(t, New(db, o)); len(got) != 1 || got[0] != "K1 Kept Row" {
			t.Errorf("read model mode %d: readers see %q, want only K1", mode, got)
		}
	}
	// The late row is gone, not only hidden: its registration number is free.
	if _, err := New(db, opts).CreateStudent(ctx, StudentInput{RegistrationNo: "LATE1", FirstName: "New", SecondName: "Student"}); err != nil {
		t.Errorf("the late row still holds its registration number: %v", err)
	}
}
