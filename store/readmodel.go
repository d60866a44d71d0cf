package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The read model answers the student reads (lists, search, counts, one
// student, registration number look-ups) from memory on servers that
// cannot use an index for them. FerretDB v1's SQLite backend pushes down
// nothing but an equality on a string or ObjectID _id, and sorts only by
// $natural on capped collections: every other find, sort, skip and count
// reads and decodes the whole collection (seconds at 100,000 students;
// docs/BENCHMARKS.md). MongoDB uses the schema 2 indexes instead.
//
// Consistency across processes (several app instances, campus manage):
// every write to students appends an entry to the students_journal
// collection, whose _id "j:N" is unique, so entries are totally ordered
// and none is lost; a read first applies the entries it has not seen (one
// look-up of a small collection when there are none). An entry carries the
// written student, or the deleted IDs, or "reload" for bulk changes
// (imports, migrations), which the writing process applies from memory and
// the others by reading the collection again. Entries older than
// journalKeep are pruned; a model that has not looked at the journal for
// half that long loads the collection again, so it cannot miss a pruned
// entry. Code that writes to the students collection must call
// s.journal: without it, other processes see the change only at their
// next full load (at most modelMaxAge later). The journal fails closed: it
// is written while the kind of server is not known yet, and an append
// that fails is retried (as a reload) in the background until it succeeds
// or the Store closes; the write is never reported as failed for it.
//
// A full load of 100,000 students takes seconds on FerretDB; it runs in
// the background with its own deadline, and starts from the model's saved
// copy when there is a usable one (modelsnap.go: a fraction of a second),
// reading the collection only when there is not. Only the very first load
// of a process makes requests wait for it (within their deadline: they may
// answer 503). A later one (another process's import or migration, or a
// model idle for longer than journalKeep/2) leaves the previous snapshot
// marked stale: a read waits for the load up to staleWait (at most half
// its time left; staleWaitBig for a big school), so that a small import is
// seen at once; past that it is
// answered from the stale snapshot, still kept up to date with the
// journal's single-student entries, until the new one replaces it (at
// most staleServe; then reads wait as for the first load). During that
// time the bulk change is not visible yet in this process.
type ReadModelMode int

// Read model modes (Options.ReadModel).
const (
	ReadModelAuto ReadModelMode = iota // on for FerretDB, off for MongoDB
	ReadModelOn
	ReadModelOff
)

const (
	colJournal     = "students_journal"
	journalKeep    = 10 * time.Minute
	modelMaxAge    = 30 * time.Minute // reloaded in the background after this
	maxJournalWalk = 10_000
	staleServe     = modelMaxAge     // longest a stale snapshot answers while loads fail
	staleWait      = 5 * time.Second // a read waits this long (at most half its time left) for a reload before it is served stale
	// A big school's reads wait this long instead: a read after another
	// process's import of its own sees it (the load of a small school
	// takes milliseconds), a big school's visitors do not wait for a load.
	staleWaitBig = 100 * time.Millisecond
	bigModel     = 10_000
	// A loaded model is sealed this long after its load (modeltext.go).
	sealAfterLoad = 300 * time.Millisecond
)

// journal entry kinds.
const (
	entryPut    = "put"
	entryDelete = "del"
	entryReload = "reload"
)

type journalEntry struct {
	ID      string      `bson:"_id"`
	Kind    string      `bson:"kind"`
	Author  string      `bson:"author"`
	At      time.Time   `bson:"at"`
	Student *studentDoc `bson:"student,omitempty"`
	IDs     []int64     `bson:"ids,omitempty"`
	// Snapshot, on a reload entry: its writer saves its read model at
	// this entry right after (modelsnap.go), so a load waits for that.
	Snapshot bool `bson:"snapshot,omitempty"`
}

func journalID(seq int64) string { return "j:" + strconv.FormatInt(seq, 10) }

// sort orders of the model, as in sortFields.
const (
	ordRegNo = iota
	ordFirst
	ordSecond
	ordID
	numOrders
)

type snapshot struct {
	// The students, in columns (modelcols.go): by place (pos, the index
	// in the order by ID), their IDs, records and search texts.
	ids  []int64
	rec  []uint32 // rec[pos]: where its record starts in recs
	recs []byte
	dead int     // bytes of recs no student points at any more
	text []byte  // every search text, each after a '\n' (which folded text never holds); nil when sealed
	at   []int32 // at[pos]: where its search text begins in text
	// sealed holds the texts compressed instead of text (modeltext.go).
	sealed *sealedText
	// The other orders: posOf[o][i] is the pos of the i-th student in
	// order o (nil for ordID: the identity).
	posOf [numOrders][]int32

	seq      int64     // last journal entry applied
	checked  time.Time // last look at the journal
	loadedAt time.Time
	// staleSince is when the snapshot was found to miss a bulk change
	// (zero: it does not): it answers until a full load replaces it.
	staleSince time.Time
	// saved is the journal position of the saved copy this snapshot
	// matches (loaded from or saved as; 0: none): Close saves it again
	// when it has applied many entries since (modelsnap.go).
	saved int64
	// gen counts the changes (forget): a seal made meanwhile is dropped.
	gen int64

	// The last searches' matches, most recent last, emptied at every
	// change (forget). A snapshot belongs to one Store (one database): the
	// cache is never shared across schools.
	cmu         sync.Mutex
	matches     []cachedMatch
	filterCache *filterCols // the filter fields by pos (modelfilter.go)
}

// matchCacheSize is how many searches a snapshot remembers: paging
// through results and a few popular queries (~12 KB each at 100,000).
const matchCacheSize = 32

type cachedMatch struct {
	key   string // the sorted words, '\n'-joined
	bits  []uint64
	total int64
}

// match is matching, remembered: the bitset returned is shared and must
// not be modified.
func (sn *snapshot) match(words []string) ([]uint64, int64) {
	sorted := slices.Clone(words)
	slices.Sort(sorted)
	key := strings.Join(sorted, "\n")
	if bits, total, ok := sn.cached(key); ok {
		return bits, total
	}
	bits := sn.matching(words)
	var total int64
	for _, w := range bits {
		total += int64(bitCount(w))
	}
	sn.remember(key, bits, total)
	return bits, total
}

// cached returns the remembered matches of key.
func (sn *snapshot) cached(key string) ([]uint64, int64, bool) {
	sn.cmu.Lock()
	defer sn.cmu.Unlock()
	for i, m := range sn.matches {
		if m.key == key {
			sn.matches = append(slices.Delete(sn.matches, i, i+1), m)
			return m.bits, m.total, true
		}
	}
	return nil, 0, false
}

// remember keeps the matches of key, forgetting the oldest past
// matchCacheSize.
func (sn *snapshot) remember(key string, bits []uint64, total int64) {
	sn.cmu.Lock()
	defer sn.cmu.Unlock()
	if len(sn.matches) >= matchCacheSize {
		sn.matches = slices.Delete(sn.matches, 0, 1)
	}
	sn.matches = append(sn.matches, cachedMatch{key: key, bits: bits, total: total})
}

func (sn *snapshot) stale() bool { return !sn.staleSince.IsZero() }

type readModel struct {
	author string // this process's Store, in journal entries

	mu      sync.RWMutex
	snap    *snapshot     // nil until loaded
	loading chan struct{} // closed when the running load ends; nil when none
	loadErr error
	pending map[int64]func(*snapshot) // own bulk entries: seq → how to apply from memory

	// amu makes this process's appends to the journal one at a time: two
	// of them claiming the same position would share pending's slot, and
	// the loser's clean-up would delete the winner's apply (its rows then
	// missing from this process's model).
	amu sync.Mutex

	fmu    sync.Mutex
	flight *flight // the running look at the journal, nil when none

	sealing atomic.Bool // sealLater runs
	// smu makes seals one at a time: a second (a save right after the
	// seal a change started) waits for the first and finds it done.
	smu sync.Mutex
}

func newReadModel() *readModel {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &readModel{author: hex.EncodeToString(b), pending: map[int64]func(*snapshot){}}
}

// matching marks, by pos, the students whose search text holds every
// word: a pass over all the texts for the word found least often in a
// sample of them (the first 64 KB, or the first block when sealed; the
// longest of those), each student it finds checked for the others. There
// is no index: with the schema 3 fields a trigram index weighed as much
// as the texts (10.7 MB at 100,000 students, 12 MB more while built), and
// a pass over every text takes a few milliseconds (issue 20: memory;
// issue 27: the pages' p99).
func (sn *snapshot) matching(words []string) []uint64 {
	needles := wordBytes(words)
	bits := make([]uint64, (len(sn.ids)+63)/64)
	var lead []byte
	rare := -1
	sn.eachText(func(text []byte, at []int32, first int) {
		if rare < 0 {
			lead, rare = leadOf(needles, text[:min(len(text), 1<<16)])
		}
		matchIn(text, at, first, needles, lead, rare, bits)
	})
	return bits
}

// leadOf picks the word a pass looks for, the one found least often in
// sample (the longest of those), and which of its bytes to look for
// first: its rarest in the sample (an IndexByte of a frequent first byte,
// 'a' of amina, stops at nearly every student).
func leadOf(needles [][]byte, sample []byte) (lead []byte, rare int) {
	lead, seen := needles[0], bytes.Count(sample, needles[0])
	for _, w := range needles[1:] {
		if n := bytes.Count(sample, w); n < seen || n == seen && len(w) > len(lead) {
			lead, seen = w, n
		}
	}
	var freq [256]int
	for _, c := range sample {
		freq[c]++
	}
	for i, c := range lead {
		if freq[c] < freq[lead[rare]] {
			rare = i
		}
	}
	return lead, rare
}

// matchIn is matching over text, which holds the texts of the students
// from place first on, beginning at at's places.
func matchIn(text []byte, at []int32, first int, needles [][]byte, lead []byte, rare int, bits []uint64) {
	end := len(at)
	k := 0 // the student whose text holds from (or the first)
	for from := 0; from < len(text); {
		i := indexVia(text[from:], lead, rare)
		if i < 0 {
			break
		}
		// The student whose text holds the hit: at or after k, galloping.
		hit, step := int32(from+i), 1
		for k+step < end && at[k+step] <= hit {
			step *= 2
		}
		j, found := slices.BinarySearch(at[k:min(k+step, end)], hit)
		if k += j; !found {
			k--
		}
		stop := len(text)
		if k+1 < end {
			stop = int(at[k+1]) - 1
		}
		if len(needles) == 1 || matchesAll(text[at[k]:stop], needles) {
			p := first + k
			bits[p/64] |= 1 << (p % 64)
		}
		if k+1 >= end {
			break
		}
		from = stop + 1
	}
}

// indexVia is bytes.Index(s, w), looking for w's byte at rare first.
func indexVia(s, w []byte, rare int) int {
	c := w[rare]
	for from := rare; from < len(s); {
		i := bytes.IndexByte(s[from:], c)
		if i < 0 {
			return -1
		}
		if p := from + i - rare; p+len(w) <= len(s) && bytes.Equal(s[p:p+len(w)], w) {
			return p
		}
		from += i + 1
	}
	return -1
}

func wordBytes(words []string) [][]byte {
	out := make([][]byte, len(words))
	for i, w := range words {
		out[i] = []byte(w)
	}
	return out
}

// buildSnapshot makes a snapshot of docs (any order, IDs distinct); it
// keeps nothing of docs.
func buildSnapshot(docs []*studentDoc, seq int64, now time.Time) *snapshot {
	return newColumns(docs, seq, now)
}

// useModel reports whether reads go to the read model.
func (s *Store) useModel(ctx context.Context) bool {
	use, _ := s.modelKind(ctx)
	return use
}

// journals reports whether writes to students are journaled: wherever a
// read model may be used, including while the kind of server is not known
// yet (a write then must not be missed by the other processes' models;
// on MongoDB an entry costs one small insert and is pruned).
func (s *Store) journals(ctx context.Context) bool {
	use, known := s.modelKind(ctx)
	return use || !known
}

// modelKind reports whether reads go to the read model, and whether that
// is known (the server answered what it is, or the options decide).
func (s *Store) modelKind(ctx context.Context) (use, known bool) {
	switch s.opts.ReadModel {
	case ReadModelOn:
		return true, true
	case ReadModelOff:
		return false, true
	}
	s.ferretMu.Lock()
	defer s.ferretMu.Unlock()
	if !s.ferretKnown { // asked until answered: one failure must not decide
		var info bson.M
		cctx, cancel := withDeadline(context.WithoutCancel(ctx), max(s.opts.QueryTimeout, 10*time.Second))
		defer cancel()
		var err error
		if s.beforeKind != nil {
			err = s.beforeKind()
		}
		if err == nil {
			err = s.db.Client().Database("admin").RunCommand(cctx, d("buildInfo", 1)).Decode(&info)
		}
		if err == nil {
			_, s.isFerret = info["ferretdbVersion"]
			s.ferretKnown = true
		}
	}
	return s.isFerret, s.ferretKnown
}

// model returns the read model brought up to date with the journal,
// loading it first if needed. The caller holds no lock; the snapshot may
// only be read under s.rm.mu.RLock.
func (s *Store) model(ctx context.Context) error {
	if err := ctx.Err(); err != nil { // the client left, or no time is left: do nothing
		return timeoutError("read students", err)
	}
	rm := s.rm
	for {
		now := s.opts.Now()
		rm.mu.RLock()
		sn, loading := rm.snap, rm.loading
		var checked, loadedAt time.Time
		if sn != nil {
			checked, loadedAt = sn.checked, sn.loadedAt
		}
		rm.mu.RUnlock()
		if sn != nil && now.Sub(checked) >= journalKeep/2 {
			// It may have missed pruned entries: load again, and serve it
			// as stale meanwhile.
			rm.mu.Lock()
			if rm.snap == sn && !sn.stale() {
				sn.staleSince = now
			}
			rm.mu.Unlock()
		}
		rm.mu.RLock()
		var staleSince time.Time
		if sn != nil {
			staleSince = sn.staleSince
		}
		rm.mu.RUnlock()
		if sn != nil && !staleSince.IsZero() && now.Sub(staleSince) < staleServe {
			// The one running, or a new one if the last failed. A short
			// load (a small import) is waited for, so that a read after
			// it sees it; a long one is not.
			loading := s.startLoad()
			wait := staleWait
			rm.mu.RLock()
			if sn.count() >= bigModel {
				wait = staleWaitBig
			}
			rm.mu.RUnlock()
			if dl, ok := ctx.Deadline(); ok {
				wait = min(wait, time.Until(dl)/2)
			}
			t := time.NewTimer(wait)
			select {
			case <-loading:
				t.Stop()
				continue
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return timeoutError("load the students into memory", ctx.Err())
			}
			if err := s.sharedCatchUp(ctx); err != nil {
				return err
			}
			return nil
		}
		if sn != nil && staleSince.IsZero() {
			if now.Sub(loadedAt) > modelMaxAge {
				s.startLoad() // safety net, in the background
			}
			if err := s.sharedCatchUp(ctx); err != nil {
				return err
			}
			rm.mu.RLock()
			current := rm.snap == sn && !sn.stale()
			rm.mu.RUnlock()
			if current {
				return nil
			}
			continue // replaced meanwhile, or stale after a reload entry: look again
		}
		if loading == nil {
			loading = s.startLoad()
		}
		select {
		case <-loading:
		case <-ctx.Done():
			return timeoutError("load the students into memory", ctx.Err())
		}
		rm.mu.RLock()
		err := rm.loadErr
		fresh := rm.snap != nil && s.opts.Now().Sub(rm.snap.checked) < journalKeep/2 && !rm.snap.stale()
		rm.mu.RUnlock()
		if err != nil && !fresh {
			return fmt.Errorf("load the students into memory: %w", err)
		}
	}
}

// startLoad starts a full load unless one runs, and returns its channel.
func (s *Store) startLoad() chan struct{} {
	s.rm.mu.Lock()
	defer s.rm.mu.Unlock()
	return s.startLoadLocked()
}

// startLoadLocked is startLoad with s.rm.mu held.
func (s *Store) startLoadLocked() chan struct{} {
	rm := s.rm
	if rm.loading != nil {
		return rm.loading
	}
	done := make(chan struct{})
	rm.loading = done
	started := s.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, s.opts.BulkTimeout)
		defer cancel()
		sn, save, refused, err := s.loadSnapshot(ctx)
		rm.mu.Lock()
		sealed := err == nil && sn.sealed != nil
		if err == nil {
			// Even when the old snapshot has applied later entries: the
			// next catchUp applies them to this one (entries are
			// idempotent), and a stale one must go.
			rm.snap = sn
			for seq := range rm.pending {
				if seq <= sn.seq { // in the collection it read
					delete(rm.pending, seq)
				}
			}
			noteModel(rm, sn.bytes())
		}
		rm.loadErr = err
		rm.loading = nil
		rm.mu.Unlock()
		close(done)
		if save {
			s.saveModel(ctx, sn, refused)
		}
		switch {
		case sealed:
			// Loaded sealed (its saved copy, no tail to apply): what is
			// left of the load is garbage.
			releaseLoadGarbage()
		case err == nil:
			// Sealed a moment later: a woken school's first page waits
			// for this load, and goes first (modeltext.go).
			t := time.NewTimer(sealAfterLoad)
			select {
			case <-t.C:
				s.sealModel()
			case <-s.closing:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
			}
			releaseLoadGarbage()
		}
	})
	if !started { // closed
		rm.loadErr = errStoreClosed
		rm.loading = nil
		close(done)
	}
	return done
}

// loadSnapshot loads the model: from its saved copy when that checks out
// (modelsnap.go), else from the collection. save reports whether the
// model should be saved (loaded from the collection, or a long tail), and
// refused which saved generation it replaces whatever its position (one
// found unusable; "-": none).
func (s *Store) loadSnapshot(ctx context.Context) (sn *snapshot, save bool, refused string, err error) {
	if s.beforeLoad != nil {
		s.beforeLoad()
	}
	sn, resave, refused, serr := s.loadSaved(ctx)
	if s.afterLoadSaved != nil {
		s.afterLoadSaved(serr)
	}
	if serr == nil {
		return sn, resave, refused, nil
	}
	if ctx.Err() != nil {
		return nil, false, "", serr
	}
	sn, err = s.loadCollection(ctx)
	return sn, err == nil, refused, err
}

// loadCollection reads the journal position, then every student: entries
// appended meanwhile are applied again by catchUp, which is harmless.
func (s *Store) loadCollection(ctx context.Context) (*snapshot, error) {
	seq, err := s.journalEnd(ctx, 0)
	if err != nil {
		return nil, err
	}
	ops, err := s.opsView(ctx) // before the rows (operations.go)
	if err != nil {
		return nil, timeoutError("read students", err)
	}
	cur, err := s.col(colStudents).Find(ctx, bson.D{})
	if err != nil {
		return nil, timeoutError("read students", err)
	}
	var docs []*studentDoc
	for cur.Next(ctx) {
		// Straight into the BSON form (studentid.go): studentDoc's
		// UnmarshalBSON would decode through a second decoder, 2.5× the CPU.
		var w studentDocBSON
		if err := cur.Decode(&w); err != nil {
			cur.Close(ctx)
			return nil, fmt.Errorf("decode student: %w", err)
		}
		doc := w.studentDoc()
		if !ops.resolveDoc(doc, cur.Current) {
			continue
		}
		if doc.Search == "" { // not migrated yet: derive the keys
			*doc = newStudentDoc(doc.Student)
		}
		docs = append(docs, doc)
	}
	if err := cur.Err(); err != nil {
		return nil, timeoutError("read students", err)
	}
	cur.Close(ctx)
	return buildSnapshot(docs, seq, s.opts.Now()), nil
}

// journalEnd returns the last journal sequence number at or after from:
// from the hint, then walking to the last existing entry.
func (s *Store) journalEnd(ctx context.Context, from int64) (int64, error) {
	var hint struct {
		Seq int64 `bson:"seq"`
	}
	err := s.col(colCounters).FindOne(ctx, d("_id", "journal_end")).Decode(&hint)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, timeoutError("read the journal end", err)
	}
	seq := max(from, hint.Seq)
	for range maxJournalWalk {
		err := s.col(colJournal).FindOne(ctx, d("_id", journalID(seq+1)), options.FindOne().SetProjection(d("_id", 1))).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return seq, nil
		}
		if err != nil {
			return 0, timeoutError("read the journal", err)
		}
		seq++
	}
	return seq, nil
}

// flight is one look at the journal that concurrent reads share.
type flight struct {
	started time.Time
	done    chan struct{}
	err     error
}

// sharedCatchUp is catchUp for a read: a look that started after the read
// arrived sees every write finished before it, so the read waits for that
// one instead of asking again. A hammered school then costs the database
// about one small look-up at a time, and no read misses an earlier write,
// unless applying it takes longer than staleWait (a big import from
// another process): the read is then answered from the snapshot as it is.
func (s *Store) sharedCatchUp(ctx context.Context) error {
	rm := s.rm
	arrived := time.Now()
	// A long catch-up (a big import's entries) is not waited for past
	// staleWait: the read is answered from the snapshot as it is.
	wait := staleWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		rm.fmu.Lock()
		f := rm.flight
		if f == nil {
			f = &flight{started: time.Now(), done: make(chan struct{})}
			rm.flight = f
			run := func(ctx context.Context) {
				// Bulk time: it may apply a big import; it outlives the read.
				cctx, cancel := withDeadline(ctx, s.opts.BulkTimeout)
				f.err = s.catchUp(cctx)
				cancel()
				rm.fmu.Lock()
				rm.flight = nil
				rm.fmu.Unlock()
				close(f.done)
			}
			if !s.background(run) {
				rm.flight = nil
				rm.fmu.Unlock()
				return errStoreClosed
			}
		}
		rm.fmu.Unlock()
		select {
		case <-f.done:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return timeoutError("read the journal", ctx.Err())
		}
		if !f.started.Before(arrived) {
			return f.err
		}
		// It started before this read arrived: look again.
	}
}

// catchUp applies the journal entries the model has not seen. They are
// read without holding the model's lock (readers go on meanwhile), then
// applied under it, those that follow the snapshot's position only.
func (s *Store) catchUp(ctx context.Context) error {
	rm := s.rm
	rm.mu.RLock()
	from := rm.snap.seq + 1
	rm.mu.RUnlock()
	var entries []journalEntry
	for seq := from; len(entries) < maxJournalWalk; seq++ {
		var e journalEntry
		err := s.col(colJournal).FindOne(ctx, d("_id", journalID(seq))).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return timeoutError("read the journal", err)
		}
		entries = append(entries, e)
	}
	if s.beforeApply != nil && len(entries) > 0 {
		s.beforeApply()
	}
	now := s.opts.Now()
	rm.mu.Lock()
	defer rm.mu.Unlock()
	sn := rm.snap
	for i, e := range entries {
		seq := from + int64(i)
		if seq <= sn.seq {
			continue // applied meanwhile by another catch-up
		}
		if seq != sn.seq+1 {
			return nil // a gap (a fresh load swapped in): look again next time
		}
		sn.seq = seq
		switch {
		case e.Author == rm.author && rm.pending[seq] != nil:
			rm.pending[seq](sn)
			if rm.loading == nil { // else kept: the load may end before this entry
				delete(rm.pending, seq)
			}
		case applyEntry(sn, e):
		default: // reload, or an entry this binary does not know
			if !sn.stale() {
				sn.staleSince = now // served until a full load replaces it
			}
			s.startLoadLocked()
		}
	}
	if sn.seq == from+int64(len(entries))-1 && now.After(sn.checked) && len(entries) < maxJournalWalk {
		sn.checked = now // it has seen the journal's end
	}
	if len(entries) > 0 {
		noteModel(rm, sn.bytes())
		if sn.sealed == nil {
			s.sealLater()
		}
	}
	return nil
}

// sealModel seals the texts of this process's model (modeltext.go),
// compressing them under the read lock (reads go on), unless a change
// comes meanwhile; it reports whether the model is sealed (or empty).
func (s *Store) sealModel() bool {
	rm := s.rm
	rm.smu.Lock()
	defer rm.smu.Unlock()
	rm.mu.RLock()
	sn := rm.snap
	if sn == nil || sn.sealed != nil || len(sn.ids) == 0 {
		rm.mu.RUnlock()
		return true
	}
	gen := sn.gen
	st := sn.sealText(textBlock)
	rm.mu.RUnlock()
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.snap != sn || sn.sealed != nil || sn.gen != gen {
		return false
	}
	sn.install(st)
	noteModel(rm, sn.bytes())
	return true
}

// sealLater seals the model again after a change, in the background (a
// change unseals it: modeltext.go); a big school's unsealed texts are
// then handed back to the system at once.
func (s *Store) sealLater() {
	rm := s.rm
	if !rm.sealing.CompareAndSwap(false, true) {
		return
	}
	started := s.background(func(context.Context) {
		for range 3 { // changes may keep coming: a few tries, then the next change's call
			if s.sealModel() {
				rm.mu.RLock()
				big := rm.snap != nil && rm.snap.count() >= bigModel
				rm.mu.RUnlock()
				if big {
					releaseLoadGarbage()
				}
			}
			rm.sealing.Store(false)
			// A change that came as this ended found it running: look again.
			rm.mu.RLock()
			raw := rm.snap != nil && rm.snap.sealed == nil && rm.snap.count() > 0
			rm.mu.RUnlock()
			if !raw || !rm.sealing.CompareAndSwap(false, true) {
				return
			}
		}
		rm.sealing.Store(false)
	})
	if !started {
		rm.sealing.Store(false)
	}
}

// applyEntry applies a single-student entry (put, delete) to sn, and
// reports whether e was one.
func applyEntry(sn *snapshot, e journalEntry) bool {
	switch {
	case e.Kind == entryPut && e.Student != nil:
		sn.put(e.Student)
	case e.Kind == entryDelete:
		for _, id := range e.IDs {
			sn.remove(id)
		}
	default:
		return false
	}
	return true
}

// journal records a write to students for every read model, this one
// included. apply, when not nil, applies a reload entry to this process's
// model from memory. It has no error: the write is committed, and must
// not be reported as failed. An entry that cannot be appended is appended
// again in the background as a reload (its content could be older than a
// later write by then), and this process's model loads afresh; Close
// waits for it. A reload with apply, on a model that is current, is
// followed by saving the model (modelsnap.go), which the entry announces.
func (s *Store) journal(ctx context.Context, e journalEntry, apply func(*snapshot)) {
	if !s.journals(ctx) {
		return
	}
	// The write is done: journal it even if the client has left, and
	// give it time (other processes depend on it).
	ctx, cancel := withDeadline(context.WithoutCancel(ctx), s.opts.BulkTimeout)
	defer cancel()
	if e.Kind == entryReload && apply != nil {
		s.rm.mu.RLock()
		e.Snapshot = s.rm.snap != nil && !s.rm.snap.stale()
		s.rm.mu.RUnlock()
	}
	seq, err := s.appendEntry(ctx, e, apply)
	if err != nil {
		s.journalLater()
		return
	}
	if err := s.catchUpIfLoaded(ctx); err != nil {
		return // the next read catches up
	}
	if e.Snapshot {
		s.rm.mu.RLock()
		sn := s.rm.snap
		current := sn != nil && !sn.stale() && sn.seq >= seq
		s.rm.mu.RUnlock()
		if current {
			s.saveModel(ctx, sn, "")
		}
	}
}

// journalLater is journal's fallback: this process's model is marked
// stale (it loads afresh, and sees the write), and a reload entry is
// appended in the background until it succeeds or the Store closes.
func (s *Store) journalLater() {
	s.rm.mu.Lock()
	if s.rm.snap != nil && !s.rm.snap.stale() {
		s.rm.snap.staleSince = s.opts.Now()
	}
	s.rm.mu.Unlock()
	s.retries.Add(1)
	started := s.background(func(ctx context.Context) {
		defer s.retries.Done()
		wait := 100 * time.Millisecond
		for {
			actx, cancel := withDeadline(ctx, s.opts.QueryTimeout)
			_, err := s.appendEntry(actx, journalEntry{Kind: entryReload}, nil)
			cancel()
			if err == nil {
				return
			}
			// A full disk is freed by people, not in the seconds Close
			// gives: a closing Store (a `campus manage` ending) does not
			// wait for it; the other processes' models are reloaded at
			// the latest after journalKeep/2 (issue 23).
			var closing chan struct{}
			if IsStorageFull(err) {
				closing = s.closing
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-closing:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			}
			wait = min(2*wait, 5*time.Second)
		}
	})
	if !started {
		s.retries.Done()
	}
}

// saveModel saves sn, if it is still this process's current model.
// Failures are not errors: a process that finds no usable saved model
// loads the collection.
func (s *Store) saveModel(ctx context.Context, sn *snapshot, refused string) {
	tenantID, err := s.TenantID(ctx)
	if err != nil || tenantID == "" {
		return
	}
	// The saved copy is the sealed form: sealed first, the work is done
	// once for both (encodeSnapshot seals for itself if a change came).
	s.sealModel()
	s.rm.mu.RLock()
	if s.rm.snap != sn || sn.stale() {
		s.rm.mu.RUnlock()
		return
	}
	raw, seq, n := encodeSnapshot(sn, tenantID), sn.seq, sn.count()
	s.rm.mu.RUnlock()
	if s.writeSnapshot(ctx, tenantID, seq, n, raw, refused) == nil {
		s.rm.mu.Lock()
		sn.saved = max(sn.saved, seq)
		s.rm.mu.Unlock()
	}
}

// saveIfBehind saves this process's model when it has applied journal
// entries since its saved copy: Close calls it, so that an app stopped
// for idleness leaves its school's saved model current, and the next
// process loads it sealed as it is (a tail to replay unseals it whole
// first, as any change does: modeltext.go).
func (s *Store) saveIfBehind(ctx context.Context) {
	s.rm.mu.RLock()
	sn := s.rm.snap
	behind := sn != nil && !sn.stale() && sn.seq > sn.saved
	s.rm.mu.RUnlock()
	if behind {
		s.saveModel(ctx, sn, "")
	}
}

// catchUpIfLoaded applies the journal to this process's model, if loaded.
func (s *Store) catchUpIfLoaded(ctx context.Context) error {
	s.rm.mu.RLock()
	loaded := s.rm.snap != nil
	s.rm.mu.RUnlock()
	if loaded {
		if err := s.catchUp(ctx); err != nil {
			return fmt.Errorf("apply the change: %w", err)
		}
	}
	return nil
}

// appendEntry appends e to the journal, as the next entry, and returns
// its position.
func (s *Store) appendEntry(ctx context.Context, e journalEntry, apply func(*snapshot)) (int64, error) {
	if s.beforeAppend != nil {
		if err := s.beforeAppend(); err != nil {
			return 0, err
		}
	}
	e.Author, e.At = s.rm.author, s.opts.Now().UTC()
	s.rm.amu.Lock()
	defer s.rm.amu.Unlock()
	seq, err := s.journalEnd(ctx, 0)
	if err != nil {
		return 0, fmt.Errorf("journal the change: %w", err)
	}
	for range maxJournalWalk {
		seq++
		e.ID = journalID(seq)
		if apply != nil {
			s.rm.mu.Lock()
			s.rm.pending[seq] = apply
			s.rm.mu.Unlock()
		}
		_, err := s.col(colJournal).InsertOne(ctx, e)
		if err == nil {
			break
		}
		if apply != nil {
			s.rm.mu.Lock()
			delete(s.rm.pending, seq)
			s.rm.mu.Unlock()
		}
		if !mongo.IsDuplicateKeyError(err) {
			return 0, fmt.Errorf("journal the change: %w", s.full(err))
		}
	}
	_, _ = s.col(colCounters).UpdateOne(ctx, d("_id", "journal_end"), d("$max", d("seq", seq)), options.UpdateOne().SetUpsert(true))
	if seq%100 == 0 {
		_, _ = s.col(colJournal).DeleteMany(ctx, d("at", d("$lt", e.At.Add(-journalKeep))))
	}
	return seq, nil
}

// listFromModel is ListStudents answered by the read model.
func (s *Store) listFromModel(ctx context.Context, o ListOptions, perPage int) (Page, error) {
	if err := s.model(ctx); err != nil {
		return Page{}, err
	}
	s.rm.mu.RLock()
	defer s.rm.mu.RUnlock()
	return s.rm.snap.page(o, perPage), nil
}

// page is one page of a list from the snapshot: deep pages cost nothing
// without a query; a query is one pass over the folded search fields.
func (sn *snapshot) page(o ListOptions, perPage int) Page {
	words := searchWords(o.Query)
	ord, desc := modelOrder(o.Sort)
	n := sn.count()
	bits, total := sn.selection(words, o)
	if total < 0 {
		total := int64(n)
		pages := max(1, int((total+int64(perPage)-1)/int64(perPage)))
		page := min(max(o.Page, 1), pages)
		start := (page - 1) * perPage
		end := min(start+perPage, n)
		places := make([]int, 0, max(0, end-start))
		for i := start; i < end; i++ {
			if desc {
				places = append(places, sn.place(ord, n-1-i))
			} else {
				places = append(places, sn.place(ord, i))
			}
		}
		return Page{Students: sn.studentsAt(places), Total: total, Page: page, PerPage: perPage, Pages: pages}
	}
	pages := max(1, int((total+int64(perPage)-1)/int64(perPage)))
	page := min(max(o.Page, 1), pages)
	skip := (page - 1) * perPage
	var students []Student
	switch {
	case total == 0:
		students = []Student{}
	case byRanks(total, skip+perPage, n) && (sn.sealed == nil || ord == ordRegNo || ord == ordID):
		// (A sealed model keeps the keys of the order by registration
		// number only: the name orders' places would decompress blocks.)
		students = sn.pageByRanks(bits, total, ord, desc, skip, perPage)
	default:
		students = sn.pageByWalk(bits, ord, desc, skip, perPage)
	}
	return Page{Students: students, Total: total, Page: page, PerPage: perPage, Pages: pages}
}

// byRanks reports whether a page of a search is cheaper to take by
// finding the matches' places (a binary search of the order each, log n
// key comparisons of some 30 walk steps each) and sorting them than by
// walking the order until need matches are passed (need·n/total places,
// on average): few matches, or a deep page.
func byRanks(total int64, need, n int) bool {
	return total*int64(30*bits.Len64(uint64(n))+bits.Len64(uint64(total))) < int64(need)*int64(n)/total
}

// pageByWalk walks the order's places (one int32 array) and takes the
// page's matches.
func (sn *snapshot) pageByWalk(bits []uint64, ord int, desc bool, skip, perPage int) []Student {
	n := sn.count()
	places := make([]int, 0, perPage)
	for k := 0; k < n && len(places) < perPage; k++ {
		i := k
		if desc {
			i = n - 1 - k
		}
		p := sn.place(ord, i)
		if bits[p/64]&(1<<(p%64)) == 0 {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		places = append(places, p)
	}
	return sn.studentsAt(places)
}

// pageByRanks finds and sorts the matches' places in the order and takes
// the page.
func (sn *snapshot) pageByRanks(set []uint64, total int64, ord int, desc bool, skip, perPage int) []Student {
	ranks := make([]int32, 0, total)
	for w, word := range set {
		for word != 0 {
			ranks = append(ranks, int32(sn.placeOf(ord, w*64+bits.TrailingZeros64(word))))
			word &= word - 1
		}
	}
	slices.Sort(ranks)
	places := make([]int, 0, perPage)
	for k := skip; k < len(ranks) && len(places) < perPage; k++ {
		r := ranks[k]
		if desc {
			r = ranks[len(ranks)-1-k]
		}
		places = append(places, sn.place(ord, int(r)))
	}
	return sn.studentsAt(places)
}

func bitCount(w uint64) int { return bits.OnesCount64(w) }

func matchesAll(search []byte, words [][]byte) bool {
	for _, w := range words {
		if !bytes.Contains(search, w) {
			return false
		}
	}
	return true
}

func modelOrder(sort string) (int, bool) {
	desc := false
	if rest, ok := strings.CutPrefix(sort, "-"); ok {
		sort, desc = rest, true
	}
	switch sort {
	case "first_name":
		return ordFirst, desc
	case "second_name":
		return ordSecond, desc
	case "id":
		return ordID, desc
	case "registration_no":
		return ordRegNo, desc
	}
	return ordRegNo, false
}

// Preload starts loading the read model in the background, where reads
// use one (FerretDB), so that a woken app's first request finds it loaded
// or partly so instead of starting the load itself (issue 20: the first
// page of a woken big school). It returns at once; nothing is reported:
// the first read waits for (or retries) the load as it would have.
func (s *Store) Preload(ctx context.Context) {
	s.background(func(life context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.QueryTimeout)
		defer cancel()
		if !s.useModel(ctx) {
			return
		}
		s.rm.mu.RLock()
		loaded := s.rm.snap != nil
		s.rm.mu.RUnlock()
		if !loaded {
			s.startLoad()
		}
	})
}
