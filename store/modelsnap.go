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

	"github.com/klauspost/compress/s2"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The read model's saved copy. A process that starts (scale to zero makes
// that the common case) would otherwise read and decode every student
// before its first answer: seconds at 100,000 on FerretDB. Instead the
// model, in its sealed form (modeltext.go: compressed already), is kept
// in the school's own database, in the
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
	snapFormat     = 4       // 4: the sealed form (modeltext.go); 3: every field, to decode and seal
	snapChunkSize  = 1 << 20 // bytes per chunk document (FerretDB and MongoDB take 16 MiB); chunks are read in parallel
	snapMaxTail    = 2000    // journal entries replayed on a snapshot; more: load the collection
	snapResaveTail = 200     // a tail this long is saved again after loading, in the background
	snapTailByID   = 16      // a longer tail is read in one pass over the journal
	snapMaxRatio   = 64      // the sealed texts or records at most this many times the payload (s2 with a dictionary: 2–3 measured)
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

// encodeSnapshot serializes sn as its sealed form (modeltext.go), as a
// process holds it: a starting process reads it nearly as it is, and
// never holds the students unsealed (issue 20: the app of a 100,000-
// student school decoded the whole unsealed model, then sealed it, and
// held both for a moment: 123 MB of RSS). An unsealed sn (a change
// since its last seal) is sealed for the save, sn left as it is. The
// sealed blocks are s2 already: the payload is not compressed again.
// The layout of records and texts (appendFields, sealText) is part of
// the format: a change to either changes snapFormat. tenantID and seq
// are repeated inside, so that the checked payload itself says whose and
// how recent it is.
func encodeSnapshot(sn *snapshot, tenantID string) []byte {
	st := sn.sealed
	if st == nil {
		st = sn.sealText(textBlock)
	}
	n := sn.count()
	b := make([]byte, 0, 64+len(st.z)+len(st.regs)+2*s2.MaxDictSize+4*len(st.zat)+n*12)
	b = append(b, snapMagic...)
	b = binary.AppendUvarint(b, snapFormat)
	b = appendString(b, tenantID)
	b = binary.AppendVarint(b, sn.seq)
	for _, v := range [...]int{n, st.per, st.size, st.recSize} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	last := int64(0)
	for _, id := range sn.ids {
		b = binary.AppendVarint(b, id-last)
		last = id
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		for _, p := range sn.posOf[o] {
			b = binary.AppendUvarint(b, uint64(p))
		}
	}
	for _, d := range [...]*s2.Dict{st.tdict, st.rdict} {
		var db []byte
		if d != nil {
			db = d.Bytes()
		}
		b = appendString(b, db)
	}
	b = appendString(b, st.regs) // regAt is where each begins: read again
	for i := 1; i < len(st.zat); i++ {
		b = binary.AppendUvarint(b, uint64(st.zat[i]-st.zat[i-1]))
	}
	return appendString(b, st.z)
}

const snapMagic = "campus-students"

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

func (r *snapReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// size reads a count or a length of at most limit.
func (r *snapReader) size(limit int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(limit) {
		r.err = errors.New("bad size")
	}
	return int(v)
}

func (r *snapReader) str() []byte {
	n := r.size(len(r.all) - r.off)
	if r.err != nil {
		return nil
	}
	s := r.all[r.off : r.off+n]
	r.off += n
	return s
}

// readPayloadHead checks that payload is a saved read model of format,
// tenantID's, at journal position seq, and returns a reader past that.
func readPayloadHead(payload []byte, format uint64, tenantID string, seq int64) (*snapReader, error) {
	r := &snapReader{all: payload}
	if !bytes.HasPrefix(payload, []byte(snapMagic)) {
		return nil, errors.New("not a saved read model")
	}
	r.off = len(snapMagic)
	if f := r.uvarint(); f != format {
		return nil, fmt.Errorf("format %d", f)
	}
	if got := r.str(); string(got) != tenantID {
		return nil, fmt.Errorf("payload of tenant ID %q", got)
	}
	if got := r.varint(); got != seq {
		return nil, fmt.Errorf("payload at journal position %d, head says %d", got, seq)
	}
	return r, nil
}

// decodeSnapshot builds a sealed snapshot from a payload, checking that
// it is tenantID's at seq and consistent (every order a permutation,
// every block and record readable: checkSealed). What the model keeps is
// copied out of the payload, which is not kept.
func decodeSnapshot(payload []byte, tenantID string, seq int64, now time.Time) (*snapshot, error) {
	r, err := readPayloadHead(payload, snapFormat, tenantID, seq)
	if err != nil {
		return nil, err
	}
	n := r.size(len(payload))
	// Blocks decompress to at most the sizes said here, and these are
	// bounded by what s2 could have made of the payload.
	most := snapMaxRatio * len(payload)
	st := &sealedText{per: r.size(1 << 16), size: r.size(most), recSize: r.size(most)}
	if r.err != nil || st.per < 1 {
		return nil, errors.New("bad counts")
	}
	sn := &snapshot{seq: seq, checked: now, loadedAt: now, ids: make([]int64, n), sealed: st}
	last := int64(0)
	for i := range sn.ids {
		id := last + r.varint()
		if i > 0 && id <= last {
			return nil, errors.New("students out of order")
		}
		sn.ids[i], last = id, id
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		seen := make([]bool, n)
		order := make([]int32, n)
		for i := range order {
			p := r.size(n - 1)
			if r.err != nil || seen[p] {
				return nil, errors.New("bad order")
			}
			seen[p] = true
			order[i] = int32(p)
		}
		sn.posOf[o] = order
	}
	for i, d := range [...]**s2.Dict{&st.tdict, &st.rdict} {
		db := r.str()
		if len(db) == 0 {
			continue
		}
		// Room for what NewDict appends (it copies when there is none).
		if *d = s2.NewDict(append(make([]byte, 0, len(db)+16), db...)); *d == nil {
			return nil, fmt.Errorf("bad dictionary %d", i)
		}
		st.dictSize += s2.MaxDictSize + 16 // as sealText counts it
	}
	// Where each run of registration number keys begins, each key's
	// lengths checked (their bytes: checkSealed).
	st.regs = bytes.Clone(r.str())
	st.regAt = make([]int32, 0, (n+regRun-1)/regRun)
	rr := &snapReader{all: st.regs}
	for pos, lastLen := 0, 0; pos < n || rr.off < len(st.regs); pos++ {
		if pos%regRun == 0 {
			st.regAt = append(st.regAt, int32(rr.off))
		}
		shared := 0
		if pos%regRun != 0 {
			shared = rr.size(lastLen)
		}
		lastLen = shared + len(rr.str())
		if pos >= n || rr.err != nil {
			return nil, errors.New("bad registration number keys")
		}
	}
	blocks := (n + st.per - 1) / st.per
	st.zat = make([]uint32, 2*blocks+1)
	for i := 1; i < len(st.zat); i++ {
		st.zat[i] = st.zat[i-1] + uint32(r.size(len(payload)))
		if st.zat[i] < st.zat[i-1] {
			return nil, errors.New("bad block places")
		}
	}
	st.z = r.str()
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.all) {
		return nil, errors.New("trailing bytes")
	}
	if int(st.zat[len(st.zat)-1]) != len(st.z) {
		return nil, errors.New("bad block places")
	}
	st.z = bytes.Clone(st.z)
	if err := sn.checkSealed(); err != nil {
		return nil, err
	}
	if n == 0 {
		sn.sealed = nil // as an empty model is: never sealed (sealBy)
	}
	return sn, nil
}

// checkSealed reads every block and record of a sealed snapshot that was
// loaded, not made by this process: the reads of a model trust it
// (a damaged block or record there is a bug, and panics).
func (sn *snapshot) checkSealed() error {
	st := sn.sealed
	var ob openBlock
	var ends []int
	var reg []byte
	buf := make([]byte, 0, 4096)
	size, recSize := 0, 0
	for b := range st.blocks() {
		texts, err := st.decodeChecked(2*b, ob.texts, st.size-size)
		if err != nil {
			return fmt.Errorf("block %d's texts: %w", b, err)
		}
		recs, err := st.decodeChecked(2*b+1, ob.recs, st.recSize-recSize)
		if err != nil {
			return fmt.Errorf("block %d's records: %w", b, err)
		}
		ob.texts, ob.recs = texts, recs
		size, recSize = size+len(texts), recSize+len(recs)
		first, end := b*st.per, min((b+1)*st.per, sn.count())
		if len(texts) == 0 || texts[0] != '\n' {
			return fmt.Errorf("block %d's texts: no line break first", b)
		}
		ob.at = textStarts(ob.at[:0], texts)
		ob.rec, ends = ob.rec[:0], ends[:0]
		for off := 0; off < len(recs); {
			k, m := binary.Uvarint(recs[off:])
			if m <= 0 || k > uint64(len(recs)-off-m) {
				return fmt.Errorf("block %d's records: bad length", b)
			}
			ob.rec = append(ob.rec, int32(off+m))
			off += m + int(k)
			ends = append(ends, off)
		}
		if len(ob.at)-1 != end-first || len(ob.rec) != end-first {
			return fmt.Errorf("block %d: %d texts and %d records, want %d", b, len(ob.at)-1, len(ob.rec), end-first)
		}
		for k := range end - first {
			recs, off, search := ob.place(k)
			var v studentView
			if err := readChecked(func() { v = sn.parseRec(first+k, allTexts, buf[:0], recs, off, search) }); err != nil {
				return fmt.Errorf("student %d: %w", sn.ids[first+k], err)
			}
			if off+len(v.raw) != ends[k] {
				return fmt.Errorf("student %d: a record of another length", sn.ids[first+k])
			}
			if reg = st.regKey(first+k, reg); !bytes.Equal(reg, v.keys[ordRegNo]) {
				return fmt.Errorf("student %d: another registration number key", sn.ids[first+k])
			}
		}
	}
	if size != st.size || recSize != st.recSize {
		return errors.New("blocks of other sizes")
	}
	return nil
}

// readChecked runs read, a read of a record, and returns its panic (a
// damaged record: the reads trust the model) as an error.
func readChecked(read func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("a damaged record: %v", p)
		}
	}()
	read()
	return nil
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
	case head.Format != snapFormat && head.Format != snapFormatPrev:
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
	// The chunks are read at once (the server decodes each in its own
	// goroutine), each copied from its reply straight to its place.
	blob := make([]byte, head.Size)
	errs := make([]error, head.Chunks)
	var wg sync.WaitGroup
	for i := range head.Chunks {
		wg.Go(func() {
			raw, err := s.col(colSnapshot).FindOne(ctx, d("_id", snapChunkID(head.Gen, i))).Raw()
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				errs[i] = fmt.Errorf("%w: chunk %d missing (torn or replaced)", errSnapshotUnusable, i)
				return
			case err != nil:
				errs[i] = timeoutError("read the saved read model", err)
				return
			}
			gen, _ := raw.Lookup("gen").StringValueOK()
			_, data, _ := raw.Lookup("data").BinaryOK()
			from := min(i*snapChunkSize, head.Size)
			want := min(snapChunkSize, head.Size-from)
			switch {
			case gen != head.Gen:
				errs[i] = fmt.Errorf("%w: chunk %d of another generation", errSnapshotUnusable, i)
			case len(data) != want:
				errs[i] = fmt.Errorf("%w: chunk %d of %d bytes, the head says %d (torn)", errSnapshotUnusable, i, len(data), want)
			default:
				copy(blob[from:], data)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(blob); !bytes.Equal(sum[:], head.Sum) {
		return nil, fmt.Errorf("%w: checksum does not match (torn)", errSnapshotUnusable)
	}
	decode := decodeSnapshot
	if head.Format == snapFormatPrev {
		decode = decodeSnapshotPrev // modelsnap_v3.go
	}
	sn, err := decode(blob, tenantID, head.Seq, s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSnapshotUnusable, err)
	}
	return sn, nil
}

// loadSaved returns the saved read model brought up to the journal's end,
// or an error saying why it cannot be used (the caller then loads the
// collection). A reload entry after the saved position that announces a
// snapshot is waited for (up to snapWaitFor): its writer saves right
// after journaling it. resave: it should be saved again (a long tail
// replayed, or the format of the release before, whose generation
// refused then names, for the save to replace).
func (s *Store) loadSaved(ctx context.Context) (sn *snapshot, resave bool, refused string, err error) {
	defer func() {
		if err != nil && refused == "" {
			refused = "-" // none to replace, but unusable: save
		}
	}()
	tenantID, err := s.TenantID(ctx)
	if err != nil {
		return nil, false, "", err
	}
	if tenantID == "" {
		return nil, false, "", fmt.Errorf("%w: the database is not stamped with a tenant ID", errSnapshotUnusable)
	}
	deadline := time.Now().Add(snapWaitFor)
	for {
		head, err := s.readHead(ctx, tenantID)
		if err != nil {
			if head != nil {
				return nil, false, head.Gen, err
			}
			return nil, false, "", err
		}
		if head == nil {
			return nil, false, "", fmt.Errorf("%w: none saved", errSnapshotUnusable)
		}
		// The tail first: a head a bulk change follows is not read.
		end, err := s.journalEnd(ctx, 0)
		if err != nil {
			return nil, false, "", err
		}
		entries, err := s.journalTail(ctx, head.Seq, end)
		if err != nil {
			return nil, false, head.Gen, err
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
					return nil, false, "", timeoutError("wait for the saved read model", ctx.Err())
				}
				continue
			}
			return nil, false, head.Gen, fmt.Errorf("%w: a bulk change (journal entry %d) after it", errSnapshotUnusable, head.Seq+1+int64(i))
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
			return nil, false, head.Gen, err
		}
		for _, e := range entries {
			applyEntry(sn, e)
		}
		sn.saved, sn.seq = head.Seq, end
		if head.Format != snapFormat {
			// Saved by the release before: saved again in this format,
			// replacing it at its position.
			return sn, true, head.Gen, nil
		}
		return sn, len(entries) >= snapResaveTail, "", nil
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
