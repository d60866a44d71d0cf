package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Bulk changes: the admin list's "change status" and "change class"
// actions. Like a bulk delete or an update import, one is an operation
// (operations.go): every changed row carries upd=N and its previous values
// in prev, with one history entry per student (op=N), and nothing of it
// counts for any reader until the one insert that commits it; a writer
// killed before is rolled back by the next writer or the app's recovery
// (its rows put back from prev, its entries removed). Each row is written
// by its `_id` alone, checked on the row itself (rowlock.go).

// opChange is the kind of a bulk change.
const opChange = "change"

// ErrChangedMeanwhile is returned (nothing changed) when a selected
// student was edited between the read and the write of a bulk change.
var ErrChangedMeanwhile = errors.New("a selected student was changed by someone else meanwhile")

// StudentsChange is what a bulk change sets: the class, the status (its
// date today, UTC, when the status changes), or both.
type StudentsChange struct {
	SetClass  bool
	Class     string // "" takes the class away
	SetStatus bool
	Status    string // one of Statuses
}

// ChangeStudents applies ch to the students with the given IDs (unknown
// IDs skipped; those it would not change left alone) as one operation,
// with one history entry per changed student, and returns how many
// changed: all or none, to every reader, also across a crash. A value
// the record refuses gives FieldErrors (nothing changed).
func (s *Store) ChangeStudents(ctx context.Context, ids []int64, ch StudentsChange, actor Actor) (int64, error) {
	if len(ids) == 0 || !ch.SetClass && !ch.SetStatus {
		return 0, nil
	}
	if ch.SetStatus && !slices.Contains(Statuses, ch.Status) {
		return 0, FieldErrors{"status": "must be one of enrolled, graduated, left, suspended"}
	}
	if _, err := s.RecoverOperations(ctx); err != nil {
		return 0, fmt.Errorf("change %d students: nothing changed: %w", len(ids), s.full(err))
	}
	v, err := s.opsView(ctx) // which marks count for writeChecked
	if err != nil {
		return 0, fmt.Errorf("change %d students: nothing changed: %w", len(ids), err)
	}
	current, err := s.StudentsByID(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("change %d students: nothing changed: %w", len(ids), err)
	}
	now := s.now()
	type change struct{ before, after Student }
	var changes []change
	for _, st := range current {
		in := st.Input()
		if ch.SetClass {
			in.Class = ch.Class
		}
		if ch.SetStatus && in.Status != ch.Status && !(in.Status == "" && ch.Status == StatusEnrolled) {
			in.Status, in.StatusDate = ch.Status, now.UTC().Format(DateLayout)
		}
		norm, fe := normalizeStudentAt(in, now.UTC())
		if fe != nil {
			return 0, fe
		}
		after := st.withRecord(norm)
		if sameRecord(after, st) {
			continue
		}
		after.UpdatedAt = now
		changes = append(changes, change{st, after})
	}
	if len(changes) == 0 {
		return 0, nil
	}
	ctx, cancel := s.boundBulk(ctx)
	defer cancel()
	op, err := s.beginOp(ctx, opRecord{Kind: opChange, UserID: actor.UserID, Username: actor.Username, Updated: len(changes)})
	if err != nil {
		return 0, fmt.Errorf("change %d students: nothing changed: %w", len(changes), s.full(err))
	}
	seq := op.rec.Seq
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("change %d students: nothing changed: %w", len(changes), s.abortOp(ctx, op, s.full(err)))
	}
	written := make([]*studentDoc, 0, len(changes))
	entries := make([]HistoryEntry, 0, len(changes))
	for i, c := range changes {
		if s.beforeInsert != nil && i == len(changes)/2 {
			s.beforeInsert(1) // the crash test's "half written"
		}
		doc := newStudentDoc(c.after)
		if err := s.writeChecked(ctx, v, seq, c.before, doc, ErrChangedMeanwhile); err != nil {
			return fail(err)
		}
		written = append(written, &doc)
		entries = append(entries, StudentChanged(actor, c.before, c.after))
	}
	if err := s.recordEntries(ctx, seq, entries...); err != nil {
		return fail(err)
	}
	if err := s.commitWrites(ctx, op, journalEntry{Kind: entryReload}, func(sn *snapshot) { sn.putMany(written) }); err != nil {
		return fail(err)
	}
	return int64(len(changes)), nil
}
