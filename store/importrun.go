package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// An import started in the background (StartImport): the school's app
// answers the confirmation at once and shows the operation's progress
// instead of holding the request for the whole import (a 100,000-row
// import takes ~30 s under load, the proxy's upstream timeout). It is the
// same operation as ApplyImport's (operations.go): recorded pending with
// its heartbeat before StartImport returns, all or nothing, rolled back
// by the recovery protocol if the process dies. The writes belong to the
// Store's life, not to the request: Close waits up to ImportDrain for
// them, then stops them (they roll back; a process killed meanwhile
// leaves them to the next start's recovery).

// ImportDrain is how long Close waits for imports running in the
// background before stopping them.
const ImportDrain = 10 * time.Second

// ImportRun is an import running in the background.
type ImportRun struct {
	Op    int64 // the operation's number in this school
	Total int   // rows to write (new and changed)

	done     atomic.Int64
	cancel   context.CancelFunc
	finished chan struct{}
	res      ImportResult
	err      error
}

// Done is the number of rows written so far.
func (r *ImportRun) Done() int { return int(r.done.Load()) }

// Finished is closed when the import has committed or rolled back.
func (r *ImportRun) Finished() <-chan struct{} { return r.finished }

// Result is the import's outcome once Finished is closed (until then: a
// zero result and no error).
func (r *ImportRun) Result() (ImportResult, error) {
	select {
	case <-r.finished:
		return r.res, r.err
	default:
		return ImportResult{}, nil
	}
}

// Cancel stops the import if it has not committed yet: it rolls back and
// its Result is an error wrapping context.Canceled.
func (r *ImportRun) Cancel() { r.cancel() }

// StartImport begins plan as one operation, as ApplyImport does, and
// returns once its record is written (ctx bounds that part only); the rows
// are written in the background, bounded by Options.BulkTimeout.
// Errors before the record (a plan with errors, recovery, the database)
// are returned here and nothing is imported.
func (s *Store) StartImport(ctx context.Context, plan ImportPlan, actor Actor) (*ImportRun, error) {
	op, err := s.beginImport(ctx, plan, actor)
	if err != nil {
		return nil, err
	}
	stopped, cancelRun := context.WithCancel(context.Background())
	run := &ImportRun{Op: op.rec.Seq, Total: len(plan.New) + len(plan.Changed), cancel: cancelRun, finished: make(chan struct{})}
	s.imports.Add(1)
	started := s.background(func(life context.Context) {
		defer s.imports.Done()
		defer close(run.finished)
		defer cancelRun()
		ctx, cancel := s.boundBulk(life)
		defer cancel()
		defer context.AfterFunc(stopped, cancel)()
		run.res, run.err = s.writeImport(ctx, op, plan, actor, &run.done)
	})
	if !started {
		s.imports.Done()
		cancelRun()
		return nil, fmt.Errorf("import students: nothing imported: %w", s.abortOp(ctx, op, errStoreClosed))
	}
	return run, nil
}

// drainImports waits for the imports running in the background, at most
// ImportDrain or until ctx ends.
func (s *Store) drainImports(ctx context.Context) {
	drained := make(chan struct{})
	go func() {
		s.imports.Wait()
		close(drained)
	}()
	t := time.NewTimer(ImportDrain)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Operation states, as OperationInfo tells them.
const (
	OpPending    = opPending
	OpCommitted  = opCommitted
	OpRolledBack = opRolledBack
)

// OperationInfo is what an operation record says: for a progress page.
type OperationInfo struct {
	Seq      int64
	Import   bool   // an import (else a bulk delete)
	State    string // OpPending, OpCommitted or OpRolledBack
	Added    int    // an import's new students
	Updated  int    // an import's changed students
	Username string // who started it
	At       time.Time
	// What a roll-back undid, as its history entry says.
	RolledBack string
}

// Operation reads operation seq of this school: ErrNotFound when there is
// none (never was, or closed more than a day ago and pruned).
func (s *Store) Operation(ctx context.Context, seq int64) (OperationInfo, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var rec opRecord
	err := s.col(colOperations).FindOne(ctx, d("_id", opID(seq))).Decode(&rec)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return OperationInfo{}, fmt.Errorf("operation %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return OperationInfo{}, fmt.Errorf("read operation %d: %w", seq, err)
	}
	info := OperationInfo{Seq: rec.Seq, Import: rec.Kind == opImport, State: opPending, Added: rec.Added, Updated: rec.Updated,
		Username: rec.Username, At: rec.At}
	var end opEnd
	switch err := s.col(colOperations).FindOne(ctx, d("_id", opEndID(seq))).Decode(&end); {
	case err == nil:
		info.State = end.State
	case !errors.Is(err, mongo.ErrNoDocuments):
		return OperationInfo{}, fmt.Errorf("read operation %d: %w", seq, err)
	}
	if info.State == opRolledBack {
		info.RolledBack = rec.describe()
	}
	return info, nil
}
