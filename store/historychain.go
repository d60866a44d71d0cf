package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The history chain: reading the newest entries without reading them all.
//
// FerretDB v1.24.2 hands SQLite only a filter on `_id` equality (a string
// or an ObjectID); every other filter, every sort but $natural on a capped
// collection, and a limit with a filter or sort are done in Go over the
// whole collection. So a history read that sorts by time costs a pass over
// every entry. The chain makes the newest entries reachable by `_id`
// look-ups alone:
//
//   - Every call that records entries claims the next batch number B by a
//     unique insert of {_id: "b:B"} into history_chain (as student IDs are
//     claimed, ids.go): the batches are numbered 1, 2, 3, … without gaps,
//     since B is tried only once b:B-1 exists.
//   - The batch document holds the entries' IDs, their time and a summary
//     (usernames, actions, operations, whether any is not about an
//     account), so a filtered read skips a batch without reading its
//     entries.
//   - A batch's time is the later of now and one millisecond after batch
//     B-1's, read before the claim: times grow strictly with B, and every
//     entry of the batch has that time. Newest first by (at, _id) is then
//     batches from the highest down, each batch's entries by _id, down.
//   - An entry counts for a batch only if its time is the batch's (a
//     batch that lists an entry recorded by another batch, the roll-back
//     entry written twice, does not show it twice); entries deleted since
//     (roll-back) are simply not found.
//   - Entries recorded before the chain existed (legacy: no field b) are
//     older than all of it; batch 1 says whether there were any, and a
//     read that passes batch 1 reads them with the old sorted query.
//
// A student's entries are found the same way: each entry about a student
// takes the student's first free slot {_id: "ID:k", h: entry ID} in
// history_students (k = 0, 1, 2, …; a unique insert, before the entry is
// written: a slot whose entry is missing is skipped).
//
// Where the read model is used (FerretDB) the history page, the admin
// home's latest entries and the usernames read the chain; MongoDB keeps
// its indexed queries. Totals are not counted by the chain: a page says
// whether there is a next one, and the total once the read got to the end.
const (
	colHistorySlots = "history_students"
	colHistoryChain = "history_chain"
	colHistoryNames = "history_names"
	chainHintDocID  = "next" // in colHistoryChain: a recent free B (may lag, never lead)
	// chainHintEvery: a writer following its own last batch moves the
	// hint at every chainHintEvery-th batch only (one update fewer per
	// record call); a reader's chainTop then probes at most that many
	// batches past it.
	chainHintEvery = 4
)

// chainBatch is a batch document.
type chainBatch struct {
	ID      string    `bson:"_id"`
	B       int64     `bson:"b"`
	At      time.Time `bson:"at"`
	IDs     []string  `bson:"ids"`
	Users   []string  `bson:"users"`
	Actions []string  `bson:"actions"`
	Ops     []int64   `bson:"ops"`
	Plain   bool      `bson:"plain"`            // some entry is not about a user account or group
	Legacy  bool      `bson:"legacy,omitempty"` // batch 1 only: entries older than the chain exist
	// Prev is, for every username of the batches before, the newest of
	// them with an entry of that user: a read of one user's entries
	// jumps from batch to batch of theirs.
	Prev []userBatch `bson:"prev,omitempty"`
}

// userBatch is a username and a batch (an array, not a document keyed by
// usernames: a name may hold dots).
type userBatch struct {
	U string `bson:"u"`
	B int64  `bson:"b"`
}

// follows sets c.Prev from the batch just before it.
func (c *chainBatch) follows(prev chainBatch) {
	c.Prev = slices.Clone(prev.Prev)
	for _, u := range prev.Users {
		i := slices.IndexFunc(c.Prev, func(p userBatch) bool { return p.U == u })
		if i < 0 {
			c.Prev = append(c.Prev, userBatch{U: u, B: prev.B})
		} else {
			c.Prev[i].B = prev.B
		}
	}
}

// before is the newest batch before c with an entry of one of names (0:
// none).
func (c *chainBatch) before(names []string) int64 {
	var b int64
	for _, p := range c.Prev {
		if slices.Contains(names, p.U) {
			b = max(b, p.B)
		}
	}
	return b
}

func batchID(b int64) string { return "b:" + strconv.FormatInt(b, 10) }

// summarize fills the batch's summary from its entries.
func (c *chainBatch) summarize(entries []HistoryEntry) {
	for _, e := range entries {
		c.IDs = append(c.IDs, e.ID)
		if !slices.Contains(c.Users, e.Username) {
			c.Users = append(c.Users, e.Username)
		}
		if !slices.Contains(c.Actions, string(e.Action)) {
			c.Actions = append(c.Actions, string(e.Action))
		}
		if !slices.Contains(c.Ops, e.Op) {
			c.Ops = append(c.Ops, e.Op)
		}
		if e.TargetUserID == "" && e.TargetGroupID == "" {
			c.Plain = true
		}
	}
}

// mayMatch reports whether some entry of the batch may be one f and v
// select.
func (c *chainBatch) mayMatch(f HistoryFilter, v OpsView) bool {
	if !f.Accounts && !c.Plain {
		return false
	}
	if f.Username != "" && !slices.ContainsFunc(usernameSpellings(f.Username), func(u string) bool { return slices.Contains(c.Users, u) }) {
		return false
	}
	if f.Action != "" && !slices.Contains(c.Actions, string(f.Action)) {
		return false
	}
	if f.Op != 0 && !slices.Contains(c.Ops, f.Op) {
		return false
	}
	if (!f.From.IsZero() && c.At.Before(f.From)) || (!f.Until.IsZero() && !c.At.Before(f.Until)) {
		return false
	}
	return slices.ContainsFunc(c.Ops, v.counts)
}

// matches is f.bson() and v.historyFilter for one entry.
func (f HistoryFilter) matches(e HistoryEntry, v OpsView) bool {
	if !v.counts(e.Op) {
		return false
	}
	if !f.Accounts && (e.TargetUserID != "" || e.TargetGroupID != "") {
		return false
	}
	if f.Username != "" && !slices.Contains(usernameSpellings(f.Username), e.Username) {
		return false
	}
	if f.Action != "" && e.Action != f.Action {
		return false
	}
	if f.Op != 0 && e.Op != f.Op {
		return false
	}
	if !f.From.IsZero() && e.At.Before(f.From) {
		return false
	}
	return f.Until.IsZero() || e.At.Before(f.Until)
}

// chainEntries records entries (already given IDs, all of one batch) in
// the chain: claims the batch, stamps their time and batch. It returns
// the entries to insert.
func (s *Store) chainEntries(ctx context.Context, entries []HistoryEntry) ([]HistoryEntry, error) {
	chain := s.col(colHistoryChain)
	// The batch after the last this Store claimed is the likely next
	// one: no read of the hint (b:B-1 is still read from the database,
	// so a chain replaced meanwhile is followed, not guessed).
	next := s.chainNext.Load()
	hinted := next == 0
	if hinted {
		var err error
		if next, err = s.chainHint(ctx); err != nil {
			return nil, err
		}
	}
	for range maxIDProbes {
		c := chainBatch{ID: batchID(next), B: next, At: s.now()}
		if next > 1 {
			var prev chainBatch
			err := chain.FindOne(ctx, d("_id", batchID(next-1))).Decode(&prev)
			if errors.Is(err, mongo.ErrNoDocuments) && !hinted {
				// The chain is not the one this Store wrote to (a
				// restore): start again from the hint.
				s.chainNext.Store(0)
				return s.chainEntries(ctx, entries)
			}
			if err != nil {
				return nil, fmt.Errorf("read history batch %d: %w", next-1, err)
			}
			c.At = later(c.At, prev.At.Add(time.Millisecond))
			c.follows(prev)
		} else {
			// The first batch: were there entries before the chain?
			err := s.col(colHistory).FindOne(ctx, bson.D{}).Err()
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return nil, fmt.Errorf("look for history entries: %w", err)
			}
			c.Legacy = err == nil
			if c.Legacy {
				if err := s.nameLegacyUsers(ctx); err != nil {
					return nil, err
				}
			}
		}
		for i := range entries {
			entries[i].At, entries[i].Batch = c.At, next
		}
		c.summarize(entries)
		_, err := chain.InsertOne(ctx, c)
		if err == nil {
			s.chainNext.Store(next + 1)
			if hinted || next%chainHintEvery == 0 {
				_, _ = chain.UpdateOne(ctx, d("_id", chainHintDocID), d("$max", d("next", next+1)), options.UpdateOne().SetUpsert(true))
			}
			return entries, s.nameUsers(ctx, c.Users)
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("claim history batch %d: %w", next, s.full(err))
		}
		next++
	}
	return nil, fmt.Errorf("claim a history batch: more than %d claims raced; try again", maxIDProbes)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// chainHint is a free batch number or one below it (1 with no chain).
func (s *Store) chainHint(ctx context.Context) (int64, error) {
	var hint struct {
		Next int64 `bson:"next"`
	}
	err := s.col(colHistoryChain).FindOne(ctx, d("_id", chainHintDocID)).Decode(&hint)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("read the history batch hint: %w", err)
	}
	return max(hint.Next, 1), nil
}

// chainTop is the highest batch (0: none).
func (s *Store) chainTop(ctx context.Context) (int64, error) {
	next, err := s.chainHint(ctx)
	if err != nil {
		return 0, err
	}
	for {
		err := s.col(colHistoryChain).FindOne(ctx, d("_id", batchID(next)), options.FindOne().SetProjection(d("_id", 1))).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return next - 1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read history batch %d: %w", next, err)
		}
		next++
	}
}

// nameUsers remembers usernames for the "who" filter (history_names).
func (s *Store) nameUsers(ctx context.Context, names []string) error {
	for _, n := range names {
		if _, seen := s.historyNames.Load(n); seen {
			continue
		}
		if _, err := s.col(colHistoryNames).InsertOne(ctx, d("_id", n)); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("record history username: %w", s.full(err))
		}
		s.historyNames.Store(n, true)
	}
	return nil
}

// nameLegacyUsers records the usernames of the entries older than the
// chain (once, when the chain begins: a pass over them).
func (s *Store) nameLegacyUsers(ctx context.Context) error {
	names, err := s.distinctStrings(ctx, colHistory, "username")
	if err != nil {
		return fmt.Errorf("read history usernames: %w", err)
	}
	return s.nameUsers(ctx, names)
}

// chainNewest returns the entries f and v select, newest first, leaving
// out the first skip and stopping after want+1 (the one more says there
// is a next page). done reports that every entry was read: then skip and
// the entries returned are all there are.
func (s *Store) chainNewest(ctx context.Context, f HistoryFilter, v OpsView, skip, want int) (out []HistoryEntry, seen int, done bool, err error) {
	top, err := s.chainTop(ctx)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read history: %w", err)
	}
	chain, hist := s.col(colHistoryChain), s.col(colHistory)
	full := func() bool { return seen >= skip+want+1 }
	var names []string
	if f.Username != "" {
		names = usernameSpellings(f.Username)
	}
	for b := top; b >= 1 && !full(); {
		var c chainBatch
		if err := chain.FindOne(ctx, d("_id", batchID(b))).Decode(&c); err != nil {
			return nil, 0, false, fmt.Errorf("read history batch %d: %w", b, err)
		}
		if !f.From.IsZero() && c.At.Before(f.From) {
			return out, seen, true, nil // older ones are older still
		}
		b--
		if names != nil {
			b = c.before(names) // the user's batch before this one
		}
		if !c.mayMatch(f, v) {
			continue
		}
		slices.Sort(c.IDs)
		for i := len(c.IDs) - 1; i >= 0 && !full(); i-- {
			var e HistoryEntry
			err := hist.FindOne(ctx, d("_id", c.IDs[i])).Decode(&e)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue // rolled back
			}
			if err != nil {
				return nil, 0, false, fmt.Errorf("read history entry %s: %w", c.IDs[i], err)
			}
			if !e.At.Equal(c.At) || !f.matches(e, v) {
				continue
			}
			if seen >= skip {
				out = append(out, e)
			}
			seen++
		}
	}
	if full() {
		return out, seen, false, nil
	}
	legacy, err := s.chainLegacy(ctx)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read history: %w", err)
	}
	if legacy {
		// Entries older than the chain: the sorted query (a pass over
		// the collection on FerretDB, once per read that gets this far).
		filter := append(v.historyFilter(f.bson()), bson.E{Key: "b", Value: d("$exists", false)})
		o := options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}})
		cur, err := hist.Find(ctx, filter, o)
		if err != nil {
			return nil, 0, false, fmt.Errorf("read history: %w", err)
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			if seen >= skip {
				var e HistoryEntry
				if err := cur.Decode(&e); err != nil {
					return nil, 0, false, fmt.Errorf("read history: decode entry: %w", err)
				}
				out = append(out, e)
			}
			seen++
			if full() {
				return out, seen, false, nil
			}
		}
		if err := cur.Err(); err != nil {
			return nil, 0, false, fmt.Errorf("read history: %w", err)
		}
	}
	return out, seen, true, nil
}

// maxSlotRounds bounds the probing for a student's free slot.
const maxSlotRounds = 10_000

// slotStudents gives each entry about a student a slot in
// history_students (insertFree).
func (s *Store) slotStudents(ctx context.Context, entries []HistoryEntry) error {
	var about []HistoryEntry
	for _, e := range entries {
		if e.StudentID != 0 {
			about = append(about, e)
		}
	}
	err := s.insertFree(ctx, colHistorySlots, len(about),
		func(i, k int) string { return strconv.FormatInt(about[i].StudentID, 10) + ":" + strconv.Itoa(k) },
		func(i int, id string) any { return bson.D{{Key: "_id", Value: id}, {Key: "h", Value: about[i].ID}} })
	if err != nil {
		return fmt.Errorf("record the students' history slots: %w", err)
	}
	return nil
}

// insertFree inserts n documents into collection name, the i-th as
// doc(i, id) with id = id(i, k) for the first k (0, 1, 2, …) no document
// has: one unordered insert a round, those whose _id was taken moving to
// the next k (two of one round with the same _id are told apart first).
// Unique inserts only: no read-modify-write, which FerretDB's updates are.
func (s *Store) insertFree(ctx context.Context, name string, n int, id func(i, k int) string, doc func(i int, id string) any) error {
	ks := make([]int, n)
	todo := make([]int, n)
	for i := range todo {
		todo[i] = i
	}
	for round := 0; len(todo) > 0; round++ {
		if round == maxSlotRounds {
			return fmt.Errorf("find a free _id for %s: more than %d taken", id(todo[0], 0), maxSlotRounds)
		}
		docs := make([]any, len(todo))
		taken := map[string]bool{}
		for j, i := range todo {
			for taken[id(i, ks[i])] {
				ks[i]++
			}
			taken[id(i, ks[i])] = true
			docs[j] = doc(i, id(i, ks[i]))
		}
		_, err := s.col(name).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			return s.full(err)
		}
		var again []int
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(we) || we.Index < 0 || we.Index >= len(todo) {
				return s.full(err)
			}
			i := todo[we.Index]
			ks[i]++
			again = append(again, i)
		}
		todo = again
	}
	return nil
}

// chainStudent is StudentHistory from the slots (and, for entries older
// than the chain, the sorted query).
func (s *Store) chainStudent(ctx context.Context, id int64) ([]HistoryEntry, error) {
	v, err := s.opsView(ctx)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := []HistoryEntry{}
	for k := 0; ; k++ {
		var sl struct {
			H string `bson:"h"`
		}
		err := s.col(colHistorySlots).FindOne(ctx, d("_id", strconv.FormatInt(id, 10)+":"+strconv.Itoa(k))).Decode(&sl)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read student %d's history: %w", id, err)
		}
		var e HistoryEntry
		err = s.col(colHistory).FindOne(ctx, d("_id", sl.H)).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // rolled back, or not written
		}
		if err != nil {
			return nil, fmt.Errorf("read student %d's history: %w", id, err)
		}
		if e.StudentID == id && e.Batch != 0 && v.counts(e.Op) {
			out = append(out, e)
		}
	}
	legacy, err := s.chainLegacy(ctx)
	if err != nil {
		return nil, fmt.Errorf("read student %d's history: %w", id, err)
	}
	if legacy {
		old, err := s.findHistory(ctx, bson.D{{Key: "student_id", Value: id}, {Key: "b", Value: d("$exists", false)}}, 1, 0)
		if err != nil {
			return nil, err
		}
		out = append(old, out...)
	}
	slices.SortStableFunc(out, func(a, b HistoryEntry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// chainLegacy reports whether entries older than the chain may exist.
func (s *Store) chainLegacy(ctx context.Context) (bool, error) {
	var first chainBatch
	err := s.col(colHistoryChain).FindOne(ctx, d("_id", batchID(1))).Decode(&first)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return true, nil // no chain yet: whatever there is
	}
	if err != nil {
		return false, fmt.Errorf("read history batch 1: %w", err)
	}
	return first.Legacy, nil
}
