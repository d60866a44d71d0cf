package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Operations make multi-row writes to students (imports, update imports,
// bulk deletes) all or nothing, also across a crash of any process, on
// servers without transactions (FerretDB v1, a standalone MongoDB).
//
// An operation is a record "op:N" in the operations collection (N from a
// unique insert, so increasing), written before any row. The rows it
// writes carry N: a new student ins=N, a changed one upd=N with its
// previous values in prev; a delete names its students in the record (the
// rows stay). Its history entries carry op=N. Every reader resolves the marks against the
// operations (opsView): while N is pending (or rolled back), its new rows
// and entries are invisible, its changed rows show their previous values
// and its students to delete are still there; once N is committed, the
// opposite. The commit is ONE insert of "op:N:end" with state committed,
// whose unique _id also settles a race with a roll-back ("op:N:end" with
// state rolled_back). Then the writer journals the change (other
// processes' read models follow) and cleans up in bounded batches (deletes
// the deleted students' rows), and marks the record closed.
//
// A pending operation whose writer is gone (the process of the record's
// owner no longer exists on this host, or, from another host, its
// heartbeat is older than opLease) is rolled back by the next multi-row
// writer and by the school's app, at its start and every RecoverInterval
// (RecoverOperations): its new rows deleted
// in bounded batches, its changes put back, its entries removed,
// and an entry "rolled back" recorded. A committed one left open is
// cleaned up the same way. Readers never see a half-done operation: a
// row marked by an operation newer than any the reader knows is treated
// as pending.
//
// What is not covered: on MongoDB (read model off), while an update
// import is pending its changed rows are shown with their previous values
// but matched and sorted by a search or list by their new ones.

// OperationLease is how long a writer on another host may go without a
// heartbeat before its pending operation counts as interrupted.
const OperationLease = 30 * time.Second

// RecoverInterval is how often a running app looks for operations whose
// writer died (RecoverOperations): one small read.
const RecoverInterval = 5 * time.Second

const (
	colOperations = "operations"
	opBeat        = 2 * time.Second // the writer's heartbeat
	opLease       = OperationLease
	opKeepClosed  = 24 * time.Hour // closed records are pruned after this (the newest is kept)
	// deleteBatch is the most documents one delete (or update by ID)
	// names: FerretDB's SQLite backend deletes with one IN (…) of every
	// matched ID, and SQLite refuses more than 32,766 variables.
	deleteBatch = 5_000
)

// Operation states.
const (
	opPending    = "pending"
	opCommitted  = "committed"
	opRolledBack = "rolled_back"
)

// Operation kinds.
const (
	opImport = "import"
	opDelete = "delete"
)

// ErrOperationLost is returned by a writer whose operation was rolled back
// by another process (which took it for dead) before it could commit.
var ErrOperationLost = errors.New("the operation was rolled back by another process before it could commit")

type opOwner struct {
	Host  string `bson:"host"`
	PID   int    `bson:"pid"`
	Start string `bson:"start,omitempty"` // the process's start time (/proc/PID/stat), "" where unknown
	Token string `bson:"token"`           // the Store
}

type opRecord struct {
	ID       string    `bson:"_id"` // opID(Seq)
	Seq      int64     `bson:"seq"`
	Kind     string    `bson:"kind"`
	Owner    opOwner   `bson:"owner"`
	Beat     time.Time `bson:"beat"`
	At       time.Time `bson:"at"`
	UserID   string    `bson:"user_id,omitempty"`
	Username string    `bson:"username"`
	First    int64     `bson:"first,omitempty"` // the IDs of new rows: [First, Last]
	Last     int64     `bson:"last,omitempty"`
	IDs      []int64   `bson:"ids,omitempty"` // the students a delete deletes
	Added    int       `bson:"added,omitempty"`
	Updated  int       `bson:"updated,omitempty"`
	Deleted  int       `bson:"deleted,omitempty"`
	Closed   bool      `bson:"closed,omitempty"` // cleaned up (or rolled back) completely
	ClosedAt time.Time `bson:"closed_at,omitempty"`

	state string // from the end record
}

type opEnd struct {
	ID    string    `bson:"_id"` // opID(Seq) + ":end"
	Seq   int64     `bson:"seq"`
	State string    `bson:"state"`
	At    time.Time `bson:"at"`
}

func opID(seq int64) string    { return "op:" + strconv.FormatInt(seq, 10) }
func opEndID(seq int64) string { return opID(seq) + ":end" }

// studentMarks are the operation marks of a stored student.
type studentMarks struct {
	Ins  int64       `bson:"ins,omitempty"`
	Upd  int64       `bson:"upd,omitempty"`
	Prev *prevValues `bson:"prev,omitempty"`
}

// prevValues are a changed student's values before the operation: its
// record (every field of recordFields) and updated_at.
type prevValues struct {
	Student `bson:",inline"`
}

// prevOf is what a change of st keeps to undo it.
func prevOf(st Student) *prevValues { return &prevValues{Student: st} }

// restored is st with the previous values of p (ID and creation kept).
func (p *prevValues) restored(st Student) Student {
	out := st.withRecord(p.Input())
	out.UpdatedAt = p.UpdatedAt
	return out
}

// markedStudent is a stored student with its marks, as readers decode it.
type markedStudent struct {
	Student `bson:",inline"`
	Marks   studentMarks `bson:",inline"`
	Lock    []int64      `bson:"lk,omitempty"` // the bulk writers holding it (fieldLock, rowlock.go)
}

// OpsView is what a reader knows of the operations: which marks count.
// Read it before the rows it resolves.
type OpsView struct {
	max    int64          // the newest operation: a mark above it is of one begun since, pending
	hidden map[int64]bool // pending or rolled back: their new rows, changes and entries do not count
	gone   map[int64]bool // the students of committed deletes not cleaned up yet: gone
	// rolledBack: the hidden ones that were rolled back (the others
	// are pending).
	rolledBack map[int64]bool
}

// counts reports whether the mark of operation seq (0: none) counts.
func (v OpsView) counts(seq int64) bool { return seq == 0 || (seq <= v.max && !v.hidden[seq]) }

// resolve turns a stored student into what readers see, and reports
// whether they see it at all.
func (v OpsView) resolve(st *Student, m studentMarks) bool {
	if !v.counts(m.Ins) || v.gone[st.ID] {
		return false
	}
	if m.Upd != 0 && m.Prev != nil && !v.counts(m.Upd) {
		*st = m.Prev.restored(*st)
	}
	return true
}

// studentFilter adds to f what leaves out rows readers do not see.
func (v OpsView) studentFilter(f bson.D) bson.D {
	nor := bson.A{d("ins", d("$gt", v.max))}
	if h := v.list(v.hidden); len(h) > 0 {
		nor = append(nor, d("ins", d("$in", h)))
	}
	if len(v.gone) > 0 {
		g := make(bson.A, 0, len(v.gone))
		for id := range v.gone {
			g = append(g, studentID(id))
		}
		nor = append(nor, d("_id", d("$in", g)))
	}
	return append(f, bson.E{Key: "$nor", Value: nor})
}

// historyFilter adds to f what leaves out entries readers do not see.
func (v OpsView) historyFilter(f bson.D) bson.D {
	nor := bson.A{d("op", d("$gt", v.max))}
	if h := v.list(v.hidden); len(h) > 0 {
		nor = append(nor, d("op", d("$in", h)))
	}
	return append(f, bson.E{Key: "$nor", Value: nor})
}

func (v OpsView) list(m map[int64]bool) bson.A {
	var a bson.A
	for seq := range m {
		a = append(a, seq)
	}
	return a
}

// ReadOperations returns the view of db's operations (backup/ uses it to
// dump what readers see).
func ReadOperations(ctx context.Context, db *mongo.Database) (OpsView, error) {
	v, _, err := readOps(ctx, db)
	return v, err
}

// readOps reads every operation record: the view, and the records with
// their state.
func readOps(ctx context.Context, db *mongo.Database) (OpsView, []*opRecord, error) {
	v := OpsView{hidden: map[int64]bool{}, gone: map[int64]bool{}, rolledBack: map[int64]bool{}}
	cur, err := db.Collection(colOperations).Find(ctx, bson.D{})
	if err != nil {
		return v, nil, fmt.Errorf("read the operations: %w", err)
	}
	var raw []bson.Raw
	if err := cur.All(ctx, &raw); err != nil {
		return v, nil, fmt.Errorf("read the operations: %w", err)
	}
	recs := map[int64]*opRecord{}
	ends := map[int64]string{}
	for _, r := range raw {
		id, _ := r.Lookup("_id").StringValueOK()
		if strings.HasSuffix(id, ":end") {
			var e opEnd
			if err := bson.Unmarshal(r, &e); err != nil {
				return v, nil, fmt.Errorf("decode operation end %s: %w", id, err)
			}
			ends[e.Seq] = e.State
			continue
		}
		rec := new(opRecord)
		if err := bson.Unmarshal(r, rec); err != nil {
			return v, nil, fmt.Errorf("decode operation %s: %w", id, err)
		}
		recs[rec.Seq] = rec
	}
	var out []*opRecord
	for seq, rec := range recs {
		v.max = max(v.max, seq)
		rec.state = ends[seq]
		if rec.state == "" {
			rec.state = opPending
		}
		switch {
		case rec.state != opCommitted:
			v.hidden[seq] = true
			v.rolledBack[seq] = rec.state == opRolledBack
		case rec.Kind == opDelete && !rec.Closed:
			for _, id := range rec.IDs {
				v.gone[id] = true
			}
		}
		out = append(out, rec)
	}
	return v, out, nil
}

// opsView is ReadOperations for this Store's database.
func (s *Store) opsView(ctx context.Context) (OpsView, error) {
	return ReadOperations(ctx, s.db)
}

// ResolveDocument is what a reader sees of a raw document of collection
// name (students or history; others are returned as they are): ok false
// when it sees nothing, else the document with the operation marks
// resolved and taken off (a backup carries no marks, and no operations).
func (v OpsView) ResolveDocument(name string, raw bson.Raw) (bson.Raw, bool, error) {
	switch name {
	case colStudents:
		id, _ := studentIDOf(raw.Lookup("_id"))
		if raw.Lookup("ins").IsZero() && raw.Lookup("upd").IsZero() && raw.Lookup("prev").IsZero() && raw.Lookup(fieldLock).IsZero() {
			if v.gone[id] {
				return nil, false, nil
			}
			return raw, true, nil
		}
		var m studentMarks
		if err := bson.Unmarshal(raw, &m); err != nil {
			return nil, false, fmt.Errorf("decode a student's marks: %w", err)
		}
		st := Student{ID: id}
		if !v.resolve(&st, m) {
			return nil, false, nil
		}
		var doc bson.D
		if err := bson.Unmarshal(raw, &doc); err != nil {
			return nil, false, fmt.Errorf("decode a student: %w", err)
		}
		var out bson.D
		if m.Upd != 0 && m.Prev != nil && !v.counts(m.Upd) {
			set := newStudentDoc(m.Prev.restored(Student{}))
			prev := map[string]any{}
			for _, e := range studentKeysSet(set) {
				prev[e.Key] = e.Value
			}
			for i, e := range doc {
				if val, ok := prev[e.Key]; ok {
					doc[i].Value = val
				}
			}
		}
		for _, e := range doc {
			switch e.Key {
			case "ins", "upd", "prev", fieldLock:
			default:
				out = append(out, e)
			}
		}
		b, err := bson.Marshal(out)
		return b, err == nil, err
	case colHistory:
		op, _ := raw.Lookup("op").AsInt64OK()
		if op == 0 {
			return raw, true, nil
		}
		if !v.counts(op) {
			return nil, false, nil
		}
		var doc bson.D
		if err := bson.Unmarshal(raw, &doc); err != nil {
			return nil, false, fmt.Errorf("decode a history entry: %w", err)
		}
		out := doc[:0]
		for _, e := range doc {
			if e.Key != "op" {
				out = append(out, e)
			}
		}
		b, err := bson.Marshal(out)
		return b, err == nil, err
	}
	return raw, true, nil
}

// ---- the writer's side ----

// runningOp is an operation this Store is writing.
type runningOp struct {
	rec     opRecord
	stopped chan struct{}
	stop    func()
}

// thisProcess is the owner of this process's operations.
var thisProcess = sync.OnceValue(func() opOwner {
	host, _ := os.Hostname()
	return opOwner{Host: host, PID: os.Getpid(), Start: processStart(os.Getpid())}
})

// processStart is the start time of process pid in clock ticks since
// boot (field 22 of /proc/PID/stat), "" where there is no /proc: with the
// PID it names one process for the life of the machine.
func processStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces and parentheses
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// ownerGone reports whether the writer of rec is gone: its process no
// longer exists (same host, where /proc tells), or its heartbeat is older
// than opLease.
func (s *Store) ownerGone(rec *opRecord) bool {
	me := thisProcess()
	if rec.Owner.Token == s.rm.author {
		s.opsMu.Lock()
		running := s.running[rec.Seq] > 0
		s.opsMu.Unlock()
		return !running
	}
	if rec.Owner.Host == me.Host && rec.Owner.Start != "" && me.Start != "" {
		return processStart(rec.Owner.PID) != rec.Owner.Start
	}
	return s.opts.Now().Sub(rec.Beat) > opLease
}

// beginOp records a pending operation and starts its heartbeat.
func (s *Store) beginOp(ctx context.Context, rec opRecord) (*runningOp, error) {
	owner := thisProcess()
	if s.fakeOwner != nil {
		owner = *s.fakeOwner
	}
	owner.Token = s.rm.author
	rec.Owner, rec.At, rec.Beat = owner, s.now(), s.now()
	var last struct {
		Seq int64 `bson:"seq"`
	}
	err := s.col(colOperations).FindOne(ctx, d("seq", d("$exists", true)),
		options.FindOne().SetSort(d("seq", -1)).SetProjection(d("seq", 1))).Decode(&last)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("begin the operation: %w", err)
	}
	if s.opHook != nil {
		s.opHook("begin")
	}
	for seq := last.Seq + 1; ; seq++ {
		// Counted, not set: two writers of this process may both try seq
		// at once, and the one whose insert fails must not take away the
		// winner's mark (its live operation would count as gone, and be
		// rolled back by the next writer).
		rec.Seq, rec.ID = seq, opID(seq)
		s.countRunning(seq, 1)
		_, err := s.col(colOperations).InsertOne(ctx, rec)
		if err == nil {
			break
		}
		s.countRunning(seq, -1)
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("begin the operation: %w", err)
		}
	}
	op := &runningOp{rec: rec, stopped: make(chan struct{})}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	op.stop = sync.OnceFunc(func() {
		cancel()
		<-op.stopped
		s.countRunning(rec.Seq, -1)
	})
	go func() {
		defer close(op.stopped)
		t := time.NewTicker(opBeat)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				uctx, ucancel := withDeadline(bctx, s.opts.QueryTimeout)
				_, _ = s.col(colOperations).UpdateOne(uctx, d("_id", rec.ID), d("$set", d("beat", s.now())))
				ucancel()
			}
		}
	}()
	return op, nil
}

// countRunning adds n to the writers of this process trying or running
// operation seq.
func (s *Store) countRunning(seq int64, n int) {
	s.opsMu.Lock()
	defer s.opsMu.Unlock()
	if s.running[seq] += n; s.running[seq] <= 0 {
		delete(s.running, seq)
	}
}

// decide ends operation seq with state (committed or rolled back) unless
// it has ended already, and returns the state it has.
func (s *Store) decide(ctx context.Context, seq int64, state string) (string, error) {
	_, err := s.col(colOperations).InsertOne(ctx, opEnd{ID: opEndID(seq), Seq: seq, State: state, At: s.now()})
	if err == nil {
		return state, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return "", fmt.Errorf("end operation %d: %w", seq, err)
	}
	var e opEnd
	if err := s.col(colOperations).FindOne(ctx, d("_id", opEndID(seq))).Decode(&e); err != nil {
		return "", fmt.Errorf("end operation %d: %w", seq, err)
	}
	return e.State, nil
}

// commitWrites commits op (its writes become visible to every reader),
// journals je for the other processes, applies it to this process's read
// model, and finishes op. An error means nothing was committed: the caller
// aborts op.
func (s *Store) commitWrites(ctx context.Context, op *runningOp, je journalEntry, apply func(*snapshot)) error {
	if s.opHook != nil {
		s.opHook("commit")
	}
	if err := s.commitOp(ctx, op); err != nil {
		return err
	}
	s.journal(ctx, je, apply)
	if s.opHook != nil {
		s.opHook("committed")
	}
	s.finishOp(ctx, op)
	return nil
}

// commitOp commits op: after this one insert, every reader sees all of
// it. ErrOperationLost when another process rolled it back first.
func (s *Store) commitOp(ctx context.Context, op *runningOp) error {
	state, err := s.decide(ctx, op.rec.Seq, opCommitted)
	if err != nil {
		return err
	}
	if state != opCommitted {
		return fmt.Errorf("operation %d: %w", op.rec.Seq, ErrOperationLost)
	}
	return nil
}

// abortOp rolls op back after a failure of its writer (err), and returns
// err with what was left when the roll-back failed too.
func (s *Store) abortOp(ctx context.Context, op *runningOp, err error) error {
	ctx = context.WithoutCancel(ctx)
	defer op.stop()
	rec := op.rec
	rec.state = opPending
	if rerr := s.rollBack(ctx, &rec); rerr != nil {
		return fmt.Errorf("%w; nothing of it is visible, and what it wrote (operation %d) is removed by the next import or delete, or at the app's next start: %w", err, rec.Seq, s.full(rerr))
	}
	return err
}

// finishOp cleans up after a commit and closes the record: a delete's
// rows in the background (the caller has its answer: readers no longer
// see them), an import's at once (nothing to delete). Failures, and a
// process that ends first, are left to the next writer
// (RecoverOperations): the operation is committed and visible whatever
// happens here.
func (s *Store) finishOp(ctx context.Context, op *runningOp) {
	rec := op.rec
	rec.state = opCommitted
	clean := func(ctx context.Context) {
		defer op.stop()
		ctx, cancel := withDeadline(ctx, s.opts.BulkTimeout)
		defer cancel()
		_ = s.cleanUp(ctx, &rec)
	}
	if rec.Kind == opDelete && s.background(clean) {
		return
	}
	clean(context.WithoutCancel(ctx))
}

// cleanUp finishes a committed operation (deletes the rows of the
// students it deleted, in bounded batches) and closes it.
func (s *Store) cleanUp(ctx context.Context, rec *opRecord) error {
	if rec.Kind == opDelete {
		for start := 0; start < len(rec.IDs); start += deleteBatch {
			batch := rec.IDs[start:min(start+deleteBatch, len(rec.IDs))]
			if _, err := s.col(colStudents).DeleteMany(ctx, d("_id", d("$in", studentIDs(batch)))); err != nil {
				return fmt.Errorf("clean up operation %d: %w", rec.Seq, err)
			}
		}
	}
	return s.closeOp(ctx, rec)
}

func (s *Store) closeOp(ctx context.Context, rec *opRecord) error {
	// A closed delete's students are gone from the collection: every
	// reader reads the records, so its IDs go.
	_, err := s.col(colOperations).UpdateOne(ctx, d("_id", rec.ID), bson.D{
		{Key: "$set", Value: bson.D{{Key: "closed", Value: true}, {Key: "closed_at", Value: s.now()}}},
		{Key: "$unset", Value: d("ids", "")}})
	if err != nil {
		return fmt.Errorf("close operation %d: %w", rec.Seq, err)
	}
	return nil
}

// rollBack ends rec as rolled back (unless it committed meanwhile: then
// it is cleaned up) and undoes it in bounded batches: its new rows
// deleted, its changed rows put back, its history entries removed, and
// one entry recording the roll-back.
func (s *Store) rollBack(ctx context.Context, rec *opRecord) error {
	if rec.state == opPending {
		state, err := s.decide(ctx, rec.Seq, opRolledBack)
		if err != nil {
			return err
		}
		rec.state = state
	}
	if rec.state == opCommitted {
		return s.cleanUp(ctx, rec)
	}
	for first := rec.First; rec.Last != 0 && first <= rec.Last; first += deleteBatch {
		last := min(first+deleteBatch-1, rec.Last)
		if _, err := s.col(colStudents).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: studentID(first)}, {Key: "$lte", Value: studentID(last)}}}, {Key: "ins", Value: rec.Seq}}); err != nil {
			return fmt.Errorf("roll back operation %d: delete its new students: %w", rec.Seq, err)
		}
	}
	if rec.Updated > 0 {
		if err := s.unmarkAll(ctx, rec.Seq); err != nil {
			return fmt.Errorf("roll back operation %d: %w", rec.Seq, err)
		}
		if err := s.restoreChanged(ctx, rec.Seq); err != nil {
			return fmt.Errorf("roll back operation %d: %w", rec.Seq, err)
		}
	}
	if err := s.deleteEntries(ctx, rec.Seq); err != nil {
		return fmt.Errorf("roll back operation %d: %w", rec.Seq, err)
	}
	e := Actor{UserID: rec.UserID, Username: rec.Username}.entry(ActionRolledBack)
	e.ID, e.At, e.Object = opID(rec.Seq)+":rolled_back", s.now(), rec.describe()
	switch err := s.col(colHistory).FindOne(ctx, d("_id", e.ID)).Err(); {
	case errors.Is(err, mongo.ErrNoDocuments): // not recorded by an earlier roll-back
		if err := s.recordEntries(ctx, 0, e); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("roll back operation %d: record it: %w", rec.Seq, err)
		}
	case err != nil:
		return fmt.Errorf("roll back operation %d: look for its entry: %w", rec.Seq, err)
	}
	return s.closeOp(ctx, rec)
}

// restoreChanged puts back the rows operation seq changed, at most
// s.markBatch read at a time: each row restored loses its mark, so the next
// read finds the rest, and a roll-back cut anywhere resumes where it
// stopped. Each write is one row (FerretDB holds the school's write lock
// per row), so a dead writer leaves one short command running.
func (s *Store) restoreChanged(ctx context.Context, seq int64) error {
	// Rows the last pass found by their mark but not by their _id: a row
	// deleted meanwhile is not found again; one found again means its
	// _id is not in the form studentID writes, and looping would never end.
	var missed map[int64]bool
	for {
		cur, err := s.col(colStudents).Find(ctx, d("upd", seq), options.Find().SetLimit(int64(s.markBatch)))
		if err != nil {
			return fmt.Errorf("find its changes: %w", err)
		}
		var changed []markedStudent
		if err := cur.All(ctx, &changed); err != nil {
			return fmt.Errorf("find its changes: %w", err)
		}
		if len(changed) == 0 {
			return nil
		}
		if s.opHook != nil {
			s.opHook("restore")
		}
		lastMissed := missed
		missed = nil
		for _, m := range changed {
			if lastMissed[m.ID] {
				return fmt.Errorf("student %d is marked by operation %d but not found by its _id %v", m.ID, seq, studentID(m.ID))
			}
			set := bson.D{}
			if p := m.Marks.Prev; p != nil {
				set = studentKeysSet(newStudentDoc(p.restored(Student{})))
			}
			upd := bson.D{{Key: "$unset", Value: bson.D{{Key: "upd", Value: ""}, {Key: "prev", Value: ""}}}}
			if len(set) > 0 {
				upd = append(bson.D{{Key: "$set", Value: set}}, upd...)
			}
			// By `_id` alone (rowlock.go); that the row is still this
			// operation's is checked on the row as it was. It is not only
			// if another process rolled this operation back at the same
			// time and a writer changed the row since: then the row is
			// put back as it was at once. (Bulk writers leave a row of a
			// rolled-back operation alone; a hand edit writes itself
			// again once this roll-back is closed: writeByHand.)
			var was bson.Raw
			err := s.col(colStudents).FindOneAndUpdate(ctx, d("_id", studentID(m.ID)), upd,
				options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&was)
			if errors.Is(err, mongo.ErrNoDocuments) {
				if missed == nil {
					missed = map[int64]bool{}
				}
				missed[m.ID] = true
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("put student %d back: %w", m.ID, err)
			}
			if mark, _ := was.Lookup("upd").AsInt64OK(); mark != seq {
				if _, err := s.col(colStudents).ReplaceOne(ctx, d("_id", studentID(m.ID)), was); err != nil {
					return fmt.Errorf("put student %d back as it was: %w", m.ID, err)
				}
			}
		}
	}
}

// deleteEntries deletes the history entries of operation seq, in bounded
// batches.
func (s *Store) deleteEntries(ctx context.Context, seq int64) error {
	for {
		cur, err := s.col(colHistory).Find(ctx, d("op", seq), options.Find().SetProjection(d("_id", 1)).SetLimit(deleteBatch))
		if err != nil {
			return fmt.Errorf("find its history entries: %w", err)
		}
		var ids []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &ids); err != nil {
			return fmt.Errorf("find its history entries: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		batch := make(bson.A, len(ids))
		for i, x := range ids {
			batch[i] = x.ID
		}
		if _, err := s.col(colHistory).DeleteMany(ctx, d("_id", d("$in", batch))); err != nil {
			return fmt.Errorf("delete its history entries: %w", err)
		}
	}
}

// describe says what an operation was, for its roll-back entry.
func (rec *opRecord) describe() string {
	switch {
	case rec.Kind == opDelete:
		return countSprintf(rec.Deleted, msgRolledBackDelete1, msgRolledBackDelete)
	case rec.Kind == opChange:
		return countSprintf(rec.Updated, msgRolledBackChange1, msgRolledBackChange)
	case rec.Updated > 0:
		return countSprintf(rec.Added, msgRolledBackImportChanged1, msgRolledBackImportChanged, rec.Updated)
	default:
		return countSprintf(rec.Added, msgRolledBackImport1, msgRolledBackImport)
	}
}

// countSprintf formats n and the other values with one (which has no
// verb for n) when n is 1, else with many.
func countSprintf(n int, one, many string, more ...any) string {
	if n == 1 {
		return fmt.Sprintf(one, more...)
	}
	return fmt.Sprintf(many, append([]any{n}, more...)...)
}

// RecoverOperations rolls back every pending operation whose writer is
// gone, and finishes the clean-up of ended ones left open, in bounded
// batches; closed records older than a day are pruned. It reports how
// many operations it rolled back. Every multi-row writer calls it first;
// an app calls it at its start.
func (s *Store) RecoverOperations(ctx context.Context) (int, error) {
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	v, recs, err := readOps(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("recover interrupted operations: %w", err)
	}
	rolled, finished, elsewhere := 0, false, 0
	for _, rec := range recs {
		if !rec.Closed && rec.Owner.Token != s.rm.author && !s.ownerGone(rec) {
			elsewhere++
		}
		switch {
		case rec.Closed:
			if rec.Seq < v.max && s.opts.Now().Sub(rec.ClosedAt) > opKeepClosed {
				// A dead writer's last command can land after its roll-back
				// (FerretDB runs it to its end): rows and marks carrying a
				// rolled-back number, hidden while the record exists. A day
				// on, that command has long ended: undo once more, then prune.
				if rec.state != opCommitted {
					if err := s.rollBack(ctx, rec); err != nil {
						return rolled, fmt.Errorf("recover interrupted operations: sweep: %w", err)
					}
				}
				_, _ = s.col(colOperations).DeleteMany(ctx, d("_id", d("$in", bson.A{rec.ID, opEndID(rec.Seq)})))
			}
		case !s.ownerGone(rec):
		case rec.state == opCommitted:
			if err := s.cleanUp(ctx, rec); err != nil {
				return rolled, fmt.Errorf("recover interrupted operations: %w", s.full(err))
			}
			finished = true
		default:
			if err := s.rollBack(ctx, rec); err != nil {
				return rolled, fmt.Errorf("recover interrupted operations: %w", s.full(err))
			}
			if rec.state == opCommitted {
				finished = true
			} else {
				rolled++
			}
		}
	}
	s.noteElsewhere(elsewhere)
	if finished {
		// Its writer may have died before journaling it: every read
		// model loads afresh.
		s.journal(ctx, journalEntry{Kind: entryReload}, nil)
	}
	return rolled, nil
}

// findStudents is a find on students as readers see them (operations
// resolved): the view is read first, its filter added to filter.
func (s *Store) findStudents(ctx context.Context, filter bson.D, o *options.FindOptionsBuilder) ([]Student, error) {
	v, err := s.opsView(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := s.col(colStudents).Find(ctx, v.studentFilter(filter), o)
	if err != nil {
		return nil, err
	}
	var docs []markedStudent
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]Student, 0, len(docs))
	for _, m := range docs {
		if v.resolve(&m.Student, m.Marks) {
			out = append(out, m.Student)
		}
	}
	return out, nil
}

// countStudents counts the students of filter as readers see them.
func (s *Store) countStudents(ctx context.Context, filter bson.D, o *options.CountOptionsBuilder) (int64, error) {
	v, err := s.opsView(ctx)
	if err != nil {
		return 0, err
	}
	return s.col(colStudents).CountDocuments(ctx, v.studentFilter(filter), o)
}

// resolveDoc is resolve for the read model's full load: doc decoded from
// raw, its marks read from raw.
func (v OpsView) resolveDoc(doc *studentDoc, raw bson.Raw) bool {
	var m studentMarks
	if ins, ok := raw.Lookup("ins").AsInt64OK(); ok {
		m.Ins = ins
	}
	if upd, ok := raw.Lookup("upd").AsInt64OK(); ok {
		m.Upd = upd
		if p, ok := raw.Lookup("prev").DocumentOK(); ok {
			m.Prev = new(prevValues)
			if bson.Unmarshal(p, m.Prev) != nil {
				m.Prev = nil
			}
		}
	}
	if m == (studentMarks{}) {
		return !v.gone[doc.ID]
	}
	st := doc.Student
	if !v.resolve(&st, m) {
		return false
	}
	if st != doc.Student {
		*doc = newStudentDoc(st)
	}
	return true
}
