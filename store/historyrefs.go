package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A student's imports: the page of a student lists, beside its own
// entries, the imports that created or changed it. An import records ONE
// history entry (StudentsImported); each student it writes is reached
// from it by a reference, not by an entry of its own: the references of
// an import are grouped by blocks of refBlock student IDs, one document
// per block and import in history_students (beside the slots of
// historychain.go): "r:BLOCK:k", the block's k-th import (k claimed by a
// unique insert, as the slots are), holding the entry's ID, whether it
// created or changed the students, and their IDs as ranges. A
// 100,000-row import of new students (consecutive IDs) writes ~100 small
// documents in one insert, not 100,000; a student's page reads its
// block's documents and the entries they name, each by `_id`, which
// FerretDB hands to SQLite (historychain.go).
//
// The references are written before the import commits. A reader counts
// one only if the entry it names exists and its operation counts
// (OpsView): a rolled-back import's entry is removed, so its references
// lead nowhere; a pending one's is hidden. Every import that touched a
// student is kept, in order (created by #5, changed by #9, …).
//
// Rows imported before the references existed carry only their marks
// (ins: the import that created them, upd: the operation that changed
// them last; operations.go). For such a row with no entry of its addition the
// marks are read instead (StudentOperations, unborn): one read of the row
// by ID (a pass over the students on FerretDB, indexed on MongoDB) and of
// the import's entry by its op (indexed on MongoDB).

// refBlock is how many consecutive student IDs share reference documents.
const refBlock = 1024

// refDocID is the k-th reference document of a block.
func refDocID(block int64, k int) string {
	return "r:" + strconv.FormatInt(block, 10) + ":" + strconv.Itoa(k)
}

// importRef is one import's reference document for one block.
type importRef struct {
	ID      string  `bson:"_id"`
	Entry   string  `bson:"h"`
	Created bool    `bson:"c,omitempty"`
	Last    bool    `bson:"l,omitempty"` // from a row's mark of its last change (backfillImportRefs)
	Ranges  []int64 `bson:"r"`           // first, last, first, last, … (inclusive)

	block int64
}

func (r importRef) has(id int64) bool {
	for i := 0; i+1 < len(r.Ranges); i += 2 {
		if r.Ranges[i] <= id && id <= r.Ranges[i+1] {
			return true
		}
	}
	return false
}

// importRefs are the references of entry (an import's) to the students
// ids (sorted) it created or changed: one a block, the IDs as ranges.
func importRefs(entry string, created bool, ids []int64) []importRef {
	var out []importRef
	for i := 0; i < len(ids); {
		ref := importRef{Entry: entry, Created: created, block: ids[i] / refBlock}
		for ; i < len(ids) && ids[i]/refBlock == ref.block; i++ {
			if n := len(ref.Ranges); n > 0 && ref.Ranges[n-1]+1 == ids[i] {
				ref.Ranges[n-1] = ids[i]
			} else {
				ref.Ranges = append(ref.Ranges, ids[i], ids[i])
			}
		}
		out = append(out, ref)
	}
	return out
}

// rangeRefs are the references of entry to the students [first, last] it
// created.
func rangeRefs(entry string, first, last int64) []importRef {
	var out []importRef
	for from := first; from <= last; {
		to := min(last, (from/refBlock+1)*refBlock-1)
		out = append(out, importRef{Entry: entry, Created: true, Ranges: []int64{from, to}, block: from / refBlock})
		from = to + 1
	}
	return out
}

// writeRefs stores refs, each as its block's first free document
// r:BLOCK:k (insertFree: unique inserts, so concurrent imports lose
// nothing).
func (s *Store) writeRefs(ctx context.Context, refs []importRef) error {
	err := s.insertFree(ctx, colHistorySlots, len(refs),
		func(i, k int) string { return refDocID(refs[i].block, k) },
		func(i int, id string) any { r := refs[i]; r.ID = id; return r })
	if err != nil {
		return fmt.Errorf("record the students of the import: %w", err)
	}
	return nil
}

// StudentOp is an operation that created or changed a student, for its
// page: its history entry (an import's: file, mode, who, when, rows).
type StudentOp struct {
	Entry   HistoryEntry
	Created bool // it created the student (else changed it)
	// Last: only the student's mark of its last change was found (a
	// row imported before references were recorded): earlier changes
	// are not known.
	Last bool
}

// StudentOperations returns the imports that created or changed student
// id, oldest first. unborn says the student has no entry of its addition
// (StudentHistory): then, where no reference is found, the row's marks
// tell its operations (rows imported before the references).
func (s *Store) StudentOperations(ctx context.Context, id int64, unborn bool) ([]StudentOp, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.opsView(ctx)
	if err != nil {
		return nil, fmt.Errorf("read student %d's imports: %w", id, err)
	}
	var out []StudentOp
	type refKey struct {
		entry         string
		created, last bool
	}
	seen := map[refKey]bool{} // a backfill run twice wrote some twice
	for k := 0; ; k++ {
		var ref importRef
		err := s.col(colHistorySlots).FindOne(ctx, d("_id", refDocID(id/refBlock, k))).Decode(&ref)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read student %d's imports: %w", id, err)
		}
		key := refKey{ref.Entry, ref.Created, ref.Last}
		if !ref.has(id) || seen[key] {
			continue
		}
		seen[key] = true
		var e HistoryEntry
		err = s.col(colHistory).FindOne(ctx, d("_id", ref.Entry)).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // rolled back
		}
		if err != nil {
			return nil, fmt.Errorf("read student %d's imports: %w", id, err)
		}
		if v.counts(e.Op) {
			out = append(out, StudentOp{Entry: e, Created: ref.Created, Last: ref.Last})
		}
	}
	if len(out) == 0 && unborn && !s.useModel(ctx) {
		// A row imported by an older binary since the backfill (indexed
		// here; a pass over the school on FerretDB, where the backfill
		// alone answers).
		return s.markedOperations(ctx, v, id)
	}
	slices.SortStableFunc(out, func(a, b StudentOp) int { return a.Entry.At.Compare(b.Entry.At) })
	return out, nil
}

// markedOperations are the operations a row's marks name (rows imported
// before the references): the import that created it, the operation that
// changed it last.
func (s *Store) markedOperations(ctx context.Context, v OpsView, id int64) ([]StudentOp, error) {
	var m studentMarks
	err := s.col(colStudents).FindOne(ctx, d("_id", studentID(id)), options.FindOne().SetProjection(bson.D{{Key: "ins", Value: 1}, {Key: "upd", Value: 1}})).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read student %d's marks: %w", id, err)
	}
	var out []StudentOp
	for _, mark := range []struct {
		op      int64
		created bool
	}{{m.Ins, true}, {m.Upd, false}} {
		if mark.op == 0 || !v.counts(mark.op) {
			continue
		}
		e := HistoryEntry{Op: mark.op}
		err := s.col(colHistory).FindOne(ctx, d("op", mark.op), options.FindOne().SetSort(d("at", 1))).Decode(&e)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("read operation %d's entry: %w", mark.op, err)
		}
		if e.Action != ActionImport && e.Action != "" {
			continue // a bulk change: its entries are the student's own
		}
		// No entry found (Action ""): the operation's number is all there is.
		out = append(out, StudentOp{Entry: e, Created: mark.created, Last: !mark.created})
	}
	return out, nil
}

// importRefsDocID, in history_students beside the references, records
// that the imports from before the references have theirs
// (backfillImportRefs).
const importRefsDocID = "r:backfilled"

// backfillImportRefs gives the imports recorded before the references
// (entries without a mode) references from their rows' marks: ins, the
// import that created a row; upd, the one that changed it last (so a
// "last changed" reference: earlier changes are not known). Once per
// database (a step of Migrate, recorded when done): one pass
// over the history's imports and one over the students, then one insert
// of the references. A run cut short is run again whole; the references
// it wrote twice are shown once (StudentOperations).
func (s *Store) backfillImportRefs(ctx context.Context) error {
	switch err := s.col(colHistorySlots).FindOne(ctx, d("_id", importRefsDocID)).Err(); {
	case err == nil:
		return nil
	case !errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("read the import references' state: %w", err)
	}
	cur, err := s.col(colHistory).Find(ctx, bson.D{{Key: "action", Value: string(ActionImport)}, {Key: "mode", Value: d("$exists", false)}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "op", Value: 1}}))
	if err != nil {
		return fmt.Errorf("read the imports before references: %w", err)
	}
	var imports []HistoryEntry
	if err := cur.All(ctx, &imports); err != nil {
		return fmt.Errorf("read the imports before references: %w", err)
	}
	entryOf := map[int64]string{}
	for _, e := range imports {
		if e.Op != 0 {
			entryOf[e.Op] = e.ID
		}
	}
	if len(entryOf) > 0 {
		cur, err := s.col(colStudents).Find(ctx, d("$or", bson.A{d("ins", d("$exists", true)), d("upd", d("$exists", true))}),
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "ins", Value: 1}, {Key: "upd", Value: 1}}))
		if err != nil {
			return fmt.Errorf("read the students' marks: %w", err)
		}
		created, changed := map[int64][]int64{}, map[int64][]int64{}
		for cur.Next(ctx) {
			var row struct {
				ID  int64 `bson:"_id"`
				Ins int64 `bson:"ins"`
				Upd int64 `bson:"upd"`
			}
			if err := cur.Decode(&row); err != nil {
				cur.Close(ctx)
				return fmt.Errorf("read the students' marks: %w", err)
			}
			if _, ok := entryOf[row.Ins]; ok {
				created[row.Ins] = append(created[row.Ins], row.ID)
			}
			if _, ok := entryOf[row.Upd]; ok {
				changed[row.Upd] = append(changed[row.Upd], row.ID)
			}
		}
		if err := cur.Err(); err != nil {
			return fmt.Errorf("read the students' marks: %w", err)
		}
		cur.Close(ctx)
		var refs []importRef
		for op, ids := range created {
			slices.Sort(ids)
			refs = append(refs, importRefs(entryOf[op], true, ids)...)
		}
		for op, ids := range changed {
			slices.Sort(ids)
			for _, r := range importRefs(entryOf[op], false, ids) {
				r.Last = true
				refs = append(refs, r)
			}
		}
		if err := s.writeRefs(ctx, refs); err != nil {
			return err
		}
	}
	_, err = s.col(colHistorySlots).UpdateOne(ctx, d("_id", importRefsDocID), d("$set", d("at", s.now())), options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("record the import references' state: %w", err)
	}
	return nil
}
