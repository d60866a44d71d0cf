package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Writes of one student filter on its `_id` alone (studentID): FerretDB
// v1 hands SQLite an `_id` equality only when `_id` is the filter's one
// key (and a string), so any other key makes each write a pass over the
// whole school. The optimistic check that a bulk change or an update
// import used to make in its filter ("the row still has the values I
// read") is made on the document the same command returns instead, in
// three one-key steps per row (writeChecked):
//
//  1. mark: $addToSet {lk: N} (N the operation), returning the row as it
//     was. Nothing readers see changes; the record is untouched.
//  2. check: the row as it was must hold the values read (every record
//     field), no other writer's mark (lk empty), and no change or insert
//     mark of an operation that is not committed (upd/ins counted by the
//     view read after RecoverOperations). Else un-mark ($pull {lk: N},
//     which takes away exactly our mark and nobody else's) and fail:
//     the caller aborts the operation (abortOp rolls back the rows it
//     wrote already).
//  3. write: $set the new record, upd N and prev = the row as it was (the
//     document returned in step 1, not the values read), $unset lk,
//     returning the row as it was once more: if its record is no longer
//     the one of step 1, a hand edit landed between the mark and the
//     write (hand edits do not take marks); the write failed the check,
//     and the operation is aborted (its roll-back restores prev: the row
//     of step 1, and the hand edit writes itself again, writeByHand).
//
// Marks are a set, not one value, so that two writers marking the same
// row at once both see it (the second one's "as it was" holds the first
// one's mark), and un-marking never takes away another writer's mark.
// Only the holder of a row's one mark writes its record, upd and prev.
//
// What a crash (of the writer's process, at any point) leaves, and what
// RecoverOperations does with it (rollBack of the pending operation N):
//
//   - after a mark (step 1 or 2, or before the un-mark): the row with
//     lk [N], its record and its marks unchanged. Readers see nothing;
//     other bulk writers find the mark and give up on that row; a hand
//     edit writes, sees the mark and waits for it (writeByHand). The
//     roll-back takes the mark away ($pull {lk: N} on every row marked N).
//   - after a write (step 3): upd N and prev, as always: readers show
//     prev until N commits; the roll-back puts prev back (restoreChanged).
//     prev is the row as the mark found it, so a change made before the
//     mark is never undone by the roll-back: the check refused it.
//   - after a write that overwrote a hand edit (between step 1 and 3)
//     and before the abort: the roll-back restores the row of step 1; the
//     hand edit, which saw the mark, has not answered yet: it waits until
//     the mark is gone and writes again, with prev = its own values while
//     N is not committed (so that N's roll-back restores the hand edit).
//     A hand edit whose own process dies meanwhile was never confirmed.
//   - after an un-mark: nothing of N on that row.
//
// A dead writer's command still running in the database may land after
// the roll-back: the day-later sweep of RecoverOperations rolls back once
// more (marks included).

// fieldLock holds the marks of the bulk writers between their check and
// their write (a set of operation numbers).
const fieldLock = "lk"

func (s *Store) hook(point string) {
	if s.opHook != nil {
		s.opHook(point)
	}
}

// findAndModify runs a one-key findAndModify of student id and decodes
// the row as it was (before) or is (after).
func (s *Store) findAndModify(ctx context.Context, id int64, update any, when options.ReturnDocument) (markedStudent, error) {
	var row markedStudent
	err := s.col(colStudents).FindOneAndUpdate(ctx, d("_id", studentID(id)), update,
		options.FindOneAndUpdate().SetReturnDocument(when)).Decode(&row)
	return row, err
}

// writeChecked writes doc over the student read (as operation seq: upd
// and prev, see above) if the stored row still holds the values read and
// no other writer holds it, else an error wrapping stale, with nothing of
// this write left on the row but (after a hand edit between the mark and
// the write) the write itself, which the caller's abort rolls back. v is
// the view read after RecoverOperations.
func (s *Store) writeChecked(ctx context.Context, v OpsView, seq int64, read Student, doc studentDoc, stale error) error {
	id := read.ID
	was, err := s.findAndModify(ctx, id, d("$addToSet", d(fieldLock, seq)), options.Before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("student %d (%s) is gone: %w", id, read.RegistrationNo, stale)
	}
	if err != nil {
		return fmt.Errorf("mark student %d: %w", id, err)
	}
	s.hook("marked")
	if len(was.Lock) > 0 || !v.counts(was.Marks.Upd) || !v.counts(was.Marks.Ins) || !sameRecord(was.Student, read) {
		s.hook("unmark")
		if _, err := s.col(colStudents).UpdateOne(ctx, d("_id", studentID(id)), d("$pull", d(fieldLock, seq))); err != nil {
			return fmt.Errorf("student %d: %w; take its mark away: %w", id, stale, err)
		}
		s.hook("unmarked")
		return fmt.Errorf("student %d (%s): %w", id, read.RegistrationNo, stale)
	}
	set := append(studentKeysSet(doc), bson.E{Key: "upd", Value: seq}, bson.E{Key: "prev", Value: prevOf(was.Student)})
	at, err := s.findAndModify(ctx, id, bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: d(fieldLock, "")}}, options.Before)
	if errors.Is(err, mongo.ErrNoDocuments) { // deleted by hand since the mark: nothing written
		return fmt.Errorf("student %d (%s) is gone: %w", id, read.RegistrationNo, stale)
	}
	if err != nil {
		return fmt.Errorf("write student %d: %w", id, err)
	}
	s.hook("written")
	if !sameRecord(at.Student, was.Student) {
		return fmt.Errorf("student %d (%s) edited by hand while marked: %w", id, read.RegistrationNo, stale)
	}
	return nil
}

// unmarkAll takes operation seq's marks away from every row (its
// roll-back: a writer that died between a mark and its write).
func (s *Store) unmarkAll(ctx context.Context, seq int64) error {
	if _, err := s.col(colStudents).UpdateMany(ctx, d(fieldLock, seq), d("$pull", d(fieldLock, seq))); err != nil {
		return fmt.Errorf("take its marks away: %w", err)
	}
	return nil
}

// writeByHand sets the record of student id to doc's (a hand edit: the
// last writer wins, as in any admin form) and returns it as stored. Hand
// edits take no marks; they respect those of the bulk writers after the
// fact, before answering:
//
//   - the row held by a bulk writer between its check and its write (lk):
//     that write overwrites this one and its operation aborts (its check
//     sees the edit); wait until the mark is gone and write again.
//   - the row changed by an operation not committed yet (upd): write
//     again with prev = this edit, so that its roll-back, if any, puts
//     this edit back; if it was rolled back already (its roll-back may be
//     restoring the row right now), wait until it is closed and write
//     again; a mark still there after that (a dead writer's late
//     command) is taken off with the write.
func (s *Store) writeByHand(ctx context.Context, id int64, doc studentDoc) (Student, error) {
	withPrev, detach := false, false
	var closed int64 // a rolled-back operation whose roll-back was waited for
	for {
		set := studentKeysSet(doc)
		if withPrev {
			set = append(set, bson.E{Key: "prev", Value: prevOf(doc.Student)})
		}
		update := d("$set", set)
		if detach {
			update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "upd", Value: ""}, {Key: "prev", Value: ""}}})
		}
		row, err := s.findAndModify(ctx, id, update, options.After)
		if err != nil {
			return Student{}, err
		}
		if len(row.Lock) > 0 {
			s.hook("hand:held")
			if err := s.waitUnheld(ctx, id); err != nil {
				return Student{}, err
			}
			continue
		}
		if row.Marks.Upd == 0 {
			return row.Student, nil
		}
		v, err := s.opsView(ctx)
		if err != nil {
			return Student{}, err
		}
		switch upd := row.Marks.Upd; {
		case v.counts(upd):
			return row.Student, nil
		case !withPrev:
			withPrev = true
		case !v.rolledBack[upd]:
			// Pending: a roll-back decided from now on restores this edit.
			return row.Student, nil
		case upd == closed:
			// Its roll-back is over and its mark still here: a dead
			// writer's late command, which the day-later sweep would undo
			// over this edit. The row leaves the operation.
			detach, withPrev = true, false
		default:
			s.hook("hand:rolled_back")
			if err := s.waitClosed(ctx, upd); err != nil {
				return Student{}, err
			}
			withPrev, closed = false, upd
		}
	}
}

// handPoll is how often a hand edit looks again at a row a bulk writer
// holds, or at an operation being rolled back.
const handPoll = 20 * time.Millisecond

// waitUnheld waits until no bulk writer holds student id (or the holders'
// operations have ended: a dead writer's mark is taken away by its
// roll-back, and it writes nothing more).
func (s *Store) waitUnheld(ctx context.Context, id int64) error {
	for {
		var row markedStudent
		err := s.col(colStudents).FindOne(ctx, d("_id", studentID(id)), options.FindOne().SetProjection(d(fieldLock, 1))).Decode(&row)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil // deleted meanwhile: the next write says so
		}
		if err != nil {
			return fmt.Errorf("wait for a bulk change of student %d: %w", id, err)
		}
		if len(row.Lock) == 0 {
			return nil
		}
		v, err := s.opsView(ctx)
		if err != nil {
			return fmt.Errorf("wait for a bulk change of student %d: %w", id, err)
		}
		live := false
		for _, seq := range row.Lock {
			live = live || seq > v.max || (v.hidden[seq] && !v.rolledBack[seq])
		}
		if !live {
			return nil
		}
		if err := sleepCtx(ctx, handPoll); err != nil {
			return fmt.Errorf("wait for a bulk change of student %d (operation %v): %w", id, row.Lock, err)
		}
	}
}

// waitClosed waits until rolled-back operation seq is closed: its
// roll-back has put every row back.
func (s *Store) waitClosed(ctx context.Context, seq int64) error {
	for {
		var rec opRecord
		err := s.col(colOperations).FindOne(ctx, d("_id", opID(seq))).Decode(&rec)
		if errors.Is(err, mongo.ErrNoDocuments) || err == nil && rec.Closed {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wait for the roll-back of operation %d: %w", seq, err)
		}
		if err := sleepCtx(ctx, handPoll); err != nil {
			return fmt.Errorf("wait for the roll-back of operation %d: %w", seq, err)
		}
	}
}

func sleepCtx(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
