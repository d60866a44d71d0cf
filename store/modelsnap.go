package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The read model's saved copy. A process that starts (scale to zero makes
// that the common case) would otherwise read and decode every student
// before its first answer: seconds at 100,000 on FerretDB. Instead the
// model, compressed, is kept in the school's own database, in the
// students_snapshot collection: a head document (format, schema version,
// tenant ID, journal position, generation, size, SHA-256) and the chunks of one generation.
// A starting process reads the head and the chunks by _id (a handful of
// look-ups FerretDB answers without a scan), checks them, and applies the
// journal entries after the saved position; anything that does not check
// out is not used, and the model is loaded from the students collection
// as before, then saved again.
//
// Why the database and not a file: the snapshot is then per school by
// construction (a Store can only touch its own database), every process
// that can write students can write it (the app child has no data folder
// of its own; `campus manage` runs elsewhere), it needs no cleanup when a
// school is purged, and it follows the database to another machine. It
// is derived data: backups leave it out (backup/archive.go).
//
// What is never served: a snapshot of another tenant (the head's tenant
// ID must equal the database's stamp, so a copy of school A's snapshot in
// school B's database is refused even when their student IDs are the
// same); a torn one (chunks of another generation, a missing chunk, or a
// SHA-256 that does not match: the payload is checked before it is
// decompressed); a stale one (a journal position beyond the journal's
// end, an entry after it pruned, or a bulk change after it: its tail is
// replayed in full or the snapshot is not used).
//
// Who writes it: a process that loaded the model from the collection, and
// a process that applied its own import (so that the apps, told to reload
// by the journal, find the import saved instead of reading 100,000 rows;
// the reload entry says a snapshot follows, and they wait a moment for
// it). A head only moves forward (a newer journal position wins).
const (
	colSnapshot    = "students_snapshot"
	snapHeadID     = "head"
	snapFormat     = 3
	snapChunkSize  = 1 << 20 // bytes per chunk document (FerretDB and MongoDB take 16 MiB); chunks are read in parallel
	snapMaxTail    = 2000    // journal entries replayed on a snapshot; more: load the collection
	snapResaveTail = 200     // a tail this long is saved again after loading, in the background
	snapTailByID   = 16      // a longer tail is read in one pass over the journal
	snapWaitFor    = 10 * time.Second
	snapSweepAfter = 10 * time.Minute // chunks of no head are removed after this
)

var errSnapshotUnusable = errors.New("saved read model not usable")

type snapHead struct {
	ID       string    `bson:"_id"`
	Format   int       `bson:"format"`
	Schema   int       `bson:"schema"` // SchemaVersion of the documents it was made from
	TenantID string    `bson:"tenant_id"`
	Seq      int64     `bson:"seq"`
	Gen      string    `bson:"gen"`
	Chunks   int       `bson:"chunks"`
	Size     int       `bson:"size"`
	Sum      []byte    `bson:"sha256"`
	Count    int       `bson:"count"`
	At       time.Time `bson:"at"`
}

type snapChunk struct {
	ID   string    `bson:"_id"`
	Gen  string    `bson:"gen"`
	At   time.Time `bson:"at"`
	Data []byte    `bson:"data"`
}

func snapChunkID(gen string, i int) string { return fmt.Sprintf("c:%s:%d", gen, i) }

// compress and decompress make a zstd coder for each use and let it go:
// a coder kept for the next save or load holds its window and tables
// (5 MB after decoding the model of 100,000 students), for an app's life,
// to save well under a millisecond once in a while.
func compress(raw []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder: %v", err)) // fixed, valid options
	}
	defer enc.Close()
	return enc.EncodeAll(raw, make([]byte, 0, len(raw)/3))
}

func decompress(blob []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return dec.DecodeAll(blob, nil)
}

// zeroNanos is what format 2 holds for a zero time (time.Time{}.UnixNano()).
var zeroNanos = time.Time{}.UnixNano()

// encodeSnapshot serializes sn: the students in ID order, then the other
// orders as places in that one. Every text field of recordTexts is
// written: a field added there changes the payload, so snapFormat must
// change with it. tenantID and seq are repeated inside, so
// that the checked payload itself says whose and how recent it is.
func encodeSnapshot(sn *snapshot, tenantID string) []byte {
	n := sn.count()
	b := make([]byte, 0, 64+len(sn.recs)+len(sn.text)+n*12)
	b = append(b, "campus-students"...)
	b = binary.AppendUvarint(b, snapFormat)
	b = appendString(b, tenantID)
	b = binary.AppendVarint(b, sn.seq)
	b = binary.AppendUvarint(b, uint64(n))
	r := blockReader{sn: sn} // in place order: each block decompressed once, no garbage
	for pos := range n {
		v := r.parse(pos, allTexts, nil)
		created, updated := v.created, v.updated
		if v.flags&recNoCreated != 0 {
			created = zeroNanos
		}
		if v.flags&recNoUpdated != 0 {
			updated = zeroNanos
		}
		b = binary.AppendVarint(b, v.id)
		b = binary.AppendVarint(b, created)
		b = binary.AppendVarint(b, updated-created)
		for _, s := range v.texts {
			b = appendString(b, s)
		}
		for _, n := range v.nums {
			b = binary.AppendUvarint(b, n)
		}
		// Keys that are the plain lower case of the names (printable
		// ASCII: what Fold gives them) are left out and derived again;
		// the rest of the search text (the schema 3 fields) follows.
		if derivedKeys(&v) {
			b = append(b, 1)
			joined := numKeys - 1
			for _, k := range v.keys {
				joined += len(k)
			}
			b = appendString(b, v.search[joined:])
			continue
		}
		b = append(b, 0)
		for _, s := range [...][]byte{v.keys[ordRegNo], v.keys[ordFirst], v.keys[ordSecond], v.search} {
			b = appendString(b, s)
		}
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		for _, p := range sn.posOf[o] {
			b = binary.AppendUvarint(b, uint64(p))
		}
	}
	return b
}

// derivedKeys reports whether v's keys and search text are the lower
// case of its printable ASCII fields, as Fold makes them.
func derivedKeys(v *studentView) bool {
	for _, s := range v.texts[:numKeys] {
		for _, c := range s {
			if c < 0x20 || c > 0x7e {
				return false
			}
		}
	}
	if v.flags&recKeysInSearch == 0 {
		return false
	}
	for i, k := range v.keys { // key i is of text field i
		if !isLowerOf(k, v.texts[i]) {
			return false
		}
	}
	return true
}

func isLowerOf(key, s []byte) bool {
	if len(key) != len(s) {
		return false
	}
	for i := range len(s) {
		if key[i] != asciiLower(s[i]) {
			return false
		}
	}
	return true
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func appendString[T string | []byte](b []byte, s T) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// snapReader reads what encodeSnapshot wrote; the first error sticks.
type snapReader struct {
	all []byte
	off int
	err error
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.all[r.off:])
	if n <= 0 {
		r.err = errors.New("bad number")
		return 0
	}
	r.off += n
	return v
}

func (r *snapReader) byte() byte {
	if r.err != nil || r.off >= len(r.all) {
		if r.err == nil {
			r.err = errors.New("past the end")
		}
		return 0
	}
	r.off++
	return r.all[r.off-1]
}

func (r *snapReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *snapReader) str() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.all)-r.off) {
		if r.err == nil {
			r.err = errors.New("string past the end")
		}
		return nil
	}
	s := r.all[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// decodeSnapshot builds a snapshot from a payload, checking that it is
// tenantID's at seq and consistent (every order a permutation). The
// columns are written straight from the payload, which is not kept.
func decodeSnapshot(payload []byte, tenantID string, seq int64, now time.Time) (*snapshot, error) {
	r := &snapReader{all: payload}
	const magic = "campus-students"
	if !bytes.HasPrefix(payload, []byte(magic)) {
		return nil, errors.New("not a saved read model")
	}
	r.off = len(magic)
	if f := r.uvarint(); f != snapFormat {
		return nil, fmt.Errorf("format %d", f)
	}
	if got := r.str(); string(got) != tenantID {
		return nil, fmt.Errorf("payload of tenant ID %q", got)
	}
	if got := r.varint(); got != seq {
		return nil, fmt.Errorf("payload at journal position %d, head says %d", got, seq)
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(payload)) {
		return nil, errors.New("bad count")
	}
	sn := &snapshot{seq: seq, checked: now, loadedAt: now}
	sn.ids, sn.rec, sn.at = make([]int64, 0, n), make([]uint32, 0, n), make([]int32, 0, n)
	// Roughly the columns' sizes (fitted at the end): the records hold
	// the payload's names and times, the texts their lower case.
	sn.recs, sn.text = make([]byte, 0, len(payload)*7/8), make([]byte, 0, len(payload)*5/8)
	var keys [numKeys][]byte
	for i := range n {
		id := r.varint()
		created := r.varint()
		updated := created + r.varint()
		var flags byte
		if created == zeroNanos {
			flags |= recNoCreated
		}
		if updated == zeroNanos {
			flags |= recNoUpdated
		}
		var texts [len(recordTexts)][]byte
		for k := range texts {
			texts[k] = r.str()
		}
		var nums [len(recordNums)]uint64
		for k := range nums {
			nums[k] = r.uvarint()
		}
		sn.text = append(sn.text, '\n')
		start := len(sn.text)
		switch r.byte() {
		case 1: // the lower case of the names (the keyed text fields), joined by spaces
			for k, s := range texts[:numKeys] {
				if k > 0 {
					sn.text = append(sn.text, ' ')
				}
				from := len(sn.text)
				for _, c := range s {
					sn.text = append(sn.text, asciiLower(c))
				}
				keys[k] = sn.text[from:]
			}
			sn.text = append(sn.text, r.str()...)
		case 0:
			keys[ordRegNo], keys[ordFirst], keys[ordSecond] = r.str(), r.str(), r.str()
			sn.text = append(sn.text, r.str()...)
		default:
			r.err = errors.New("bad keys")
		}
		if r.err != nil {
			return nil, r.err
		}
		if bytes.IndexByte(sn.text[start:], '\n') >= 0 {
			return nil, errors.New("a line break in a search text")
		}
		if i > 0 && sn.ids[i-1] >= id {
			return nil, errors.New("students out of order")
		}
		sn.ids = append(sn.ids, id)
		sn.at = append(sn.at, int32(start))
		sn.rec = append(sn.rec, uint32(len(sn.recs)))
		sn.recs = appendFields(sn.recs, flags, created, updated, texts, nums, keys, sn.text[start:])
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		seen := make([]bool, n)
		order := make([]int32, n)
		for i := range order {
			p := r.uvarint()
			if r.err != nil || p >= n || seen[p] {
				return nil, errors.New("bad order")
			}
			seen[p] = true
			order[i] = int32(p)
		}
		sn.posOf[o] = order
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.all) {
		return nil, errors.New("trailing bytes")
	}
	sn.recs, sn.text = fit(sn.recs), fit(sn.text)
	return sn, nil
}

// releaseLoadGarbage hands the memory a load used and no longer needs
// (the payload, the decoded chunks, the collection's documents) back to
// the operating system at once: the runtime would keep it for minutes,
// and an app's RSS is what a machine of many schools pays for. A load
// from the saved copy too: its compressed and decompressed payloads
// weigh as much as the model, and the scavenger kept ~4 MB of them.
func releaseLoadGarbage() {
	debug.FreeOSMemory()
}

// saveSnapshot writes sn (which the caller must not change meanwhile: it
// holds s.rm.mu at least for reading) as the school's saved read model,
// unless a newer one is saved already.
// writeSnapshot saves blob as the model at seq, unless a model at a later
// position is saved already; a head of generation refused (one a load
// found unusable) is replaced whatever its position.
func (s *Store) writeSnapshot(ctx context.Context, tenantID string, seq int64, count int, blob []byte, refused string) error {
	g := make([]byte, 8)
	_, _ = rand.Read(g)
	gen := hex.EncodeToString(g)
	sum := sha256.Sum256(blob)
	col := s.col(colSnapshot)
	var prev snapHead // whose chunks this save removes, if it replaces it
	if err := col.FindOne(ctx, d("_id", snapHeadID)).Decode(&prev); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("save the read model: %w", err)
	}
	now := s.now()
	chunks := 0
	for off := 0; off < len(blob) || chunks == 0; off += snapChunkSize {
		c := snapChunk{ID: snapChunkID(gen, chunks), Gen: gen, At: now, Data: blob[off:min(off+snapChunkSize, len(blob))]}
		if _, err := col.InsertOne(ctx, c); err != nil {
			return fmt.Errorf("save the read model: %w", s.full(err))
		}
		chunks++
	}
	head := snapHead{ID: snapHeadID, Format: snapFormat, Schema: SchemaVersion, TenantID: tenantID, Seq: seq, Gen: gen, Chunks: chunks,
		Size: len(blob), Sum: sum[:], Count: count, At: now}
	// Forward only: the filter matches a head at an older position, or
	// none (then the upsert inserts it; a newer head makes it a duplicate).
	older := bson.A{d("seq", d("$lt", seq))}
	if refused != "" {
		older = append(older, d("gen", refused))
	}
	_, err := col.ReplaceOne(ctx, bson.D{{Key: "_id", Value: snapHeadID}, {Key: "$or", Value: older}}, head, options.Replace().SetUpsert(true))
	won := err == nil
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		_, _ = col.DeleteMany(ctx, d("gen", gen))
		return fmt.Errorf("save the read model: %w", err)
	}
	// A save that replaced the head removes the chunks of the head it
	// replaced, never others: FerretDB does not make the conditional
	// replace atomic, so two saves can both replace, and neither may
	// remove the other's chunks (the head may end up pointing at them).
	// Chunks of no head (a save that lost that race, or stopped midway)
	// are swept once they are old.
	switch {
	case !won:
		_, err = col.DeleteMany(ctx, d("gen", gen))
	case prev.Gen != "" && prev.Gen != gen:
		_, err = col.DeleteMany(ctx, d("gen", prev.Gen))
	}
	if err == nil {
		_, err = col.DeleteMany(ctx, bson.D{{Key: "_id", Value: d("$ne", snapHeadID)},
			{Key: "gen", Value: d("$ne", gen)}, {Key: "at", Value: d("$lt", now.Add(-snapSweepAfter))}})
	}
	if err != nil {
		return fmt.Errorf("save the read model: remove old chunks: %w", err)
	}
	return nil
}

// readHead reads and checks the saved read model's head: nil, nil when
// there is none; the head and errSnapshotUnusable when it cannot be used.
func (s *Store) readHead(ctx context.Context, tenantID string) (*snapHead, error) {
	var head snapHead
	err := s.col(colSnapshot).FindOne(ctx, d("_id", snapHeadID)).Decode(&head)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, timeoutError("read the saved read model", err)
	}
	switch {
	case head.Format != snapFormat:
		return &head, fmt.Errorf("%w: format %d", errSnapshotUnusable, head.Format)
	case head.Schema != SchemaVersion: // made from documents of another schema (0: before schema 4)
		return &head, fmt.Errorf("%w: schema %d, the documents are of schema %d", errSnapshotUnusable, head.Schema, SchemaVersion)
	case head.TenantID != tenantID:
		return &head, fmt.Errorf("%w: saved for tenant ID %q, the database is stamped %q", errSnapshotUnusable, head.TenantID, tenantID)
	case head.Chunks < 1 || head.Chunks > 1024 || head.Size < 0 || head.Size > head.Chunks*(16<<20):
		return &head, fmt.Errorf("%w: bad head", errSnapshotUnusable)
	}
	return &head, nil
}

// readSnapshot reads the chunks of head and decodes them, checked.
func (s *Store) readSnapshot(ctx context.Context, head snapHead, tenantID string) (*snapshot, error) {
	// The chunks are read at once: the server decodes each in its own
	// goroutine.
	chunks := make([][]byte, head.Chunks)
	errs := make([]error, head.Chunks)
	var wg sync.WaitGroup
	for i := range head.Chunks {
		wg.Go(func() {
			var c snapChunk
			err := s.col(colSnapshot).FindOne(ctx, d("_id", snapChunkID(head.Gen, i))).Decode(&c)
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				errs[i] = fmt.Errorf("%w: chunk %d missing (torn or replaced)", errSnapshotUnusable, i)
			case err != nil:
				errs[i] = timeoutError("read the saved read model", err)
			case c.Gen != head.Gen:
				errs[i] = fmt.Errorf("%w: chunk %d of another generation", errSnapshotUnusable, i)
			}
			chunks[i] = c.Data
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	blob := bytes.Join(chunks, nil)
	if sum := sha256.Sum256(blob); len(blob) != head.Size || !bytes.Equal(sum[:], head.Sum) {
		return nil, fmt.Errorf("%w: checksum does not match (torn)", errSnapshotUnusable)
	}
	raw, err := decompress(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSnapshotUnusable, err)
	}
	sn, err := decodeSnapshot(raw, tenantID, head.Seq, s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSnapshotUnusable, err)
	}
	return sn, nil
}

// loadSaved returns the saved read model brought up to the journal's end,
// or an error saying why it cannot be used (the caller then loads the
// collection). A reload entry after the saved position that announces a
// snapshot is waited for (up to snapWaitFor): its writer saves right
// after journaling it.
func (s *Store) loadSaved(ctx context.Context) (sn *snapshot, tail int, refused string, err error) {
	defer func() {
		if err != nil && refused == "" {
			refused = "-" // none to replace, but unusable: save
		}
	}()
	tenantID, err := s.TenantID(ctx)
	if err != nil {
		return nil, 0, "", err
	}
	if tenantID == "" {
		return nil, 0, "", fmt.Errorf("%w: the database is not stamped with a tenant ID", errSnapshotUnusable)
	}
	deadline := time.Now().Add(snapWaitFor)
	for {
		head, err := s.readHead(ctx, tenantID)
		if err != nil {
			if head != nil {
				return nil, 0, head.Gen, err
			}
			return nil, 0, "", err
		}
		if head == nil {
			return nil, 0, "", fmt.Errorf("%w: none saved", errSnapshotUnusable)
		}
		// The tail first: a head a bulk change follows is not read.
		end, err := s.journalEnd(ctx, 0)
		if err != nil {
			return nil, 0, "", err
		}
		entries, err := s.journalTail(ctx, head.Seq, end)
		if err != nil {
			return nil, 0, head.Gen, err
		}
		if i := slices.IndexFunc(entries, func(e journalEntry) bool { return e.Kind != entryPut && e.Kind != entryDelete }); i >= 0 {
			// A bulk change after it: a newer snapshot is coming, or not.
			// Not waited for once the entry is older than snapWaitFor:
			// its writer's save failed (a full disk, issue 23), and every
			// load would otherwise wait for it again.
			if entries[i].Snapshot && time.Now().Before(deadline) && time.Since(entries[i].At) < snapWaitFor {
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, 0, "", timeoutError("wait for the saved read model", ctx.Err())
				}
				continue
			}
			return nil, 0, head.Gen, fmt.Errorf("%w: a bulk change (journal entry %d) after it", errSnapshotUnusable, head.Seq+1+int64(i))
		}
		restore := relaxGC()
		sn, err := s.readSnapshot(ctx, *head, tenantID)
		restore()
		if err != nil {
			if errors.Is(err, errSnapshotUnusable) && time.Now().Before(deadline) {
				// Replaced while read (its chunks removed)? Then again.
				if now, herr := s.readHead(ctx, tenantID); herr == nil && now != nil && now.Gen != head.Gen {
					continue
				}
			}
			return nil, 0, head.Gen, err
		}
		for _, e := range entries {
			applyEntry(sn, e)
		}
		sn.saved, sn.seq = head.Seq, end
		return sn, len(entries), "", nil
	}
}

// journalTail reads the entries after seq up to end, all of them: a
// missing one (pruned) makes the tail unusable.
func (s *Store) journalTail(ctx context.Context, seq, end int64) ([]journalEntry, error) {
	switch {
	case end < seq:
		return nil, fmt.Errorf("%w: saved at journal position %d, beyond the journal's end %d", errSnapshotUnusable, seq, end)
	case end-seq > snapMaxTail:
		return nil, fmt.Errorf("%w: %d journal entries behind", errSnapshotUnusable, end-seq)
	}
	if end-seq > snapTailByID {
		return s.journalTailScan(ctx, seq, end)
	}
	entries := make([]journalEntry, 0, end-seq)
	for q := seq + 1; q <= end; q++ {
		var e journalEntry
		err := s.col(colJournal).FindOne(ctx, d("_id", journalID(q))).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("%w: journal entry %d pruned", errSnapshotUnusable, q)
		}
		if err != nil {
			return nil, timeoutError("read the journal", err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// journalTailScan is journalTail in one read of the whole journal (at
// most journalKeep of entries): past a few entries, cheaper on FerretDB
// than one look-up each (a millisecond or more apiece).
func (s *Store) journalTailScan(ctx context.Context, seq, end int64) ([]journalEntry, error) {
	cur, err := s.col(colJournal).Find(ctx, bson.D{})
	if err != nil {
		return nil, timeoutError("read the journal", err)
	}
	entries := make([]journalEntry, end-seq)
	found := make([]bool, end-seq)
	for cur.Next(ctx) {
		var e journalEntry
		if err := cur.Decode(&e); err != nil {
			cur.Close(ctx)
			return nil, fmt.Errorf("decode a journal entry: %w", err)
		}
		q, err := strconv.ParseInt(strings.TrimPrefix(e.ID, "j:"), 10, 64)
		if err == nil && q > seq && q <= end {
			entries[q-seq-1], found[q-seq-1] = e, true
		}
	}
	if err := cur.Err(); err != nil {
		return nil, timeoutError("read the journal", err)
	}
	cur.Close(ctx)
	if i := slices.Index(found, false); i >= 0 {
		return nil, fmt.Errorf("%w: journal entry %d pruned", errSnapshotUnusable, seq+1+int64(i))
	}
	return entries, nil
}
