package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
)

// A loaded model is sealed: its search texts and records are kept
// compressed, in blocks of textBlock students, instead of as two byte
// arenas (issue 20: the app of a 100,000-student school in 60 MB of RSS;
// with every schema 3 field filled the texts were 12.3 MB and the
// records 7.7 MB of a 22.8 MB model). What stays uncompressed is what is
// read at random and often: the IDs and orders, and each student's
// registration number key (the order by it is searched before every
// create and import row; the name orders are walked, not searched, when
// sealed: page).
//
// A search decompresses every block's texts (the records are compressed
// apart) into one buffer and runs the same pass over it as over the
// arena (matchIn). A student's fields are read from its block,
// decompressed on first use and kept among the last few; a page reads
// its students in place order, each block once (studentsAt). A change
// (put, remove: the journal's entries, an import) unseals the model
// first (two arenas again, as before) and the Store seals it again
// after, in the background (sealModel).
//
// Blocks are small (32 students, a few KB) so that a page of students
// spread over the school (a class's "all" page) decompresses little
// more than it shows; they compress as well as big ones because a big
// school's texts and records each get a dictionary: 64 KB of themselves,
// from the middle of the school (s2's dictionaries).
//
// The trade-off, measured (docs/BENCHMARKS.md, helpers "dense" and
// "sealsnap"): at 100,000 students every field filled, the model takes
// 7.1 MB instead of 22 (BenchmarkSavedModel); a search that no cache
// answers decompresses 11 MB of texts (5–8 ms more than the pass alone);
// a single change of a sealed model costs one decompression (~17 ms) and
// one compression (~75 ms) of every block more than before, in the
// background. The saved copy is this form (modelsnap.go): a woken
// process is sealed from its load. s2 rather than zstd:
// several times faster to decompress, and it keeps no decoder state
// between uses.
const (
	textBlock      = 32 // students per sealed block
	textCachedBlks = 4  // decompressed blocks a sealed model keeps
	dictFrom       = 4 * s2.MaxDictSize
	regRun         = 16 // registration number keys a run of regs: a key is read from its run's first
)

type sealedText struct {
	per int // students per block (textBlock; fewer in tests)
	// z holds every block's texts, then its records, each compressed
	// (s2) on its own (a search decompresses the texts only): zat[2b] is
	// where block b's texts begin, zat[2b+1] its records; then len(z). A
	// block's texts are as in the arena (each after a '\n'); its records
	// each follow their length.
	z             []byte
	zat           []uint32
	size, recSize int // the arenas' lengths unsealed
	// The texts' and the records' dictionaries (64 KB of each from the
	// middle of the school; nil: none): blocks of a few students compress
	// as well as big ones with them, and a page or a student decompresses
	// a few KB instead of a big block.
	tdict, rdict *s2.Dict
	dictSize     int
	// regs are the registration number keys, in place order, front-coded
	// by runs of regRun: the first of a run is its length, then the key;
	// each next one the length it shares with the one before, then the
	// length of the rest, then the rest (a school's numbers share most of
	// their bytes: at 100,000 students 0.5 MB instead of 1.5).
	// regAt[r] is where run r begins. The order by registration number is
	// searched by them (a look-up before every create, every import row);
	// the name orders are walked instead (page).
	regs  []byte
	regAt []int32

	mu    sync.Mutex
	cache [textCachedBlks]*openBlock // the last blocks read, most recent at next-1
	next  int
}

// openBlock is a sealed block decompressed: its texts and records, and
// where each student's begins in them (at and rec: one more at the end).
// It is never changed after: it may be kept while the snapshot is read.
type openBlock struct {
	b           int
	texts, recs []byte
	at, rec     []int32
}

// textStarts appends to at where each text of texts begins (after its
// '\n'), then len(texts)+1 (so that text i ends at at[i+1]-1).
func textStarts(at []int32, texts []byte) []int32 {
	for i := 0; i < len(texts); {
		j := bytes.IndexByte(texts[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		at = append(at, int32(i))
	}
	return append(at, int32(len(texts)+1))
}

// sealText makes the sealed form of sn's texts and records, per students
// a block, reading sn only.
func (sn *snapshot) sealText(per int) *sealedText {
	n := len(sn.ids)
	st := &sealedText{per: per, size: len(sn.text), regAt: make([]int32, 0, (n+regRun-1)/regRun)}
	blocks := (n + per - 1) / per
	st.zat = make([]uint32, 0, 2*blocks+1)
	z := make([]byte, 0, (len(sn.text)+len(sn.recs))/3)
	regs := make([]byte, 0, 4*n)
	var last []byte // the key before, in regs
	// A dictionary for encoding builds its tables (hundreds of KB): the
	// sealed form keeps fresh ones, for decoding only.
	tenc, renc := sampleDict(sn.text), sampleDict(sn.recs)
	st.tdict, st.rdict = sampleDict(sn.text), sampleDict(sn.recs)
	for _, a := range [...][]byte{sn.text, sn.recs} {
		if len(a) >= dictFrom {
			st.dictSize += s2.MaxDictSize + 16
		}
	}
	var recs, scratch []byte
	for b := range blocks {
		first, end := b*per, min((b+1)*per, n)
		recs = recs[:0]
		for pos := first; pos < end; pos++ {
			v := sn.rawView(pos)
			recs = appendString(recs, v.raw)
			regs, last = st.appendReg(regs, pos, last, v.keys[ordRegNo])
		}
		st.recSize += len(recs)
		stop := len(sn.text)
		if end < n {
			stop = int(sn.at[end]) - 1
		}
		for i, raw := range [...][]byte{sn.text[sn.at[first]-1 : stop], recs} {
			if need := s2.MaxEncodedLen(len(raw)); cap(scratch) < need {
				scratch = make([]byte, need)
			}
			st.zat = append(st.zat, uint32(len(z)))
			if d := [...]*s2.Dict{tenc, renc}[i]; d != nil {
				z = append(z, d.EncodeBetter(scratch[:cap(scratch)], raw)...)
			} else {
				z = append(z, s2.EncodeBetter(scratch[:cap(scratch)], raw)...)
			}
		}
	}
	st.zat = append(st.zat, uint32(len(z)))
	st.z, st.regs = fit(z), fit(regs)
	return st
}

// sampleDict is a dictionary of 64 KB from the middle of arena, or nil
// when arena is too small to be worth one (under 256 KB: some 2,000
// students' texts).
func sampleDict(arena []byte) *s2.Dict {
	if len(arena) < dictFrom {
		return nil
	}
	from := max(0, len(arena)/2-s2.MaxDictSize/2)
	to := min(len(arena), from+s2.MaxDictSize)
	return s2.MakeDict(arena[from:to:to], nil) // no room after it: MakeDict copies it, and keeps nothing of arena
}

// keysAt returns the lengths of the keys of the student at pos and its
// search text, which they begin, joined by ' '; ok is false when its
// keys are not there but in its record.
func (sn *snapshot) keysAt(pos int) (lens [numKeys]int, search []byte, ok bool) {
	var b []byte
	var off int
	if sn.sealed != nil {
		b, off, search = sn.sealedAt(pos)
	} else {
		b, off, search = sn.recs, int(sn.rec[pos]), sn.search(pos)
	}
	if b[off]&recKeysInSearch == 0 {
		return lens, nil, false
	}
	off++
	for i := range lens {
		var k uint64
		k, off = readUvarint(b, off)
		lens[i] = int(k)
	}
	return lens, search, true
}

// appendReg appends the key of the student at pos to regs, after last
// (the key before it, in regs), and returns regs and where key is in it.
func (st *sealedText) appendReg(regs []byte, pos int, last, key []byte) ([]byte, []byte) {
	if pos%regRun == 0 {
		st.regAt = append(st.regAt, int32(len(regs)))
		regs = appendString(regs, key)
		return regs, regs[len(regs)-len(key):]
	}
	shared := 0
	for shared < min(len(last), len(key)) && last[shared] == key[shared] {
		shared++
	}
	regs = binary.AppendUvarint(regs, uint64(shared))
	regs = appendString(regs, key[shared:])
	return regs, key
}

// regKey is the registration number key of the student at pos of a
// sealed snapshot, written to buf (grown when too small).
func (st *sealedText) regKey(pos int, buf []byte) []byte {
	k, off := readBytes(st.regs, int(st.regAt[pos/regRun]))
	buf = append(buf[:0], k...)
	for range pos % regRun {
		var shared uint64
		shared, off = readUvarint(st.regs, off)
		k, off = readBytes(st.regs, off)
		buf = append(buf[:shared], k...)
	}
	return buf
}

// seal seals sn's texts now (a snapshot no one else sees yet, or under
// the model's write lock).
func (sn *snapshot) seal() { sn.sealBy(textBlock) }

func (sn *snapshot) sealBy(per int) {
	if sn.sealed == nil && len(sn.ids) > 0 {
		sn.install(sn.sealText(per))
	}
}

// install replaces sn's texts and records (and where each begins) by
// their sealed form st.
func (sn *snapshot) install(st *sealedText) {
	sn.sealed, sn.text, sn.recs, sn.at, sn.rec, sn.dead = st, nil, nil, nil, nil, 0
}

// unseal makes the texts and records arenas again, before a change.
func (sn *snapshot) unseal() {
	st := sn.sealed
	if st == nil {
		return
	}
	n := len(sn.ids)
	text, recs := make([]byte, 0, st.size), make([]byte, 0, st.recSize)
	at, rec := make([]int32, 0, n+1), make([]uint32, 0, n)
	var buf []byte
	for b := range st.blocks() {
		buf = st.decode(2*b, buf)
		from := len(at)
		at = textStarts(at, buf)
		at = at[:len(at)-1] // the block's end
		for i := from; i < len(at); i++ {
			at[i] += int32(len(text))
		}
		text = append(text, buf...)
		buf = st.decode(2*b+1, buf)
		for off := 0; off < len(buf); {
			var r []byte
			r, off = readBytes(buf, off)
			rec = append(rec, uint32(len(recs)))
			recs = append(recs, r...)
		}
	}
	if len(at) != n || len(rec) != n {
		panic("read model: sealed blocks of another count") // written by this process
	}
	sn.text, sn.recs, sn.at, sn.rec, sn.sealed = text, recs, at, rec, nil
}

func (st *sealedText) blocks() int { return (len(st.zat) - 1) / 2 }

// decode decompresses part i of z (zat) into buf (grown when too small).
func (st *sealedText) decode(i int, buf []byte) []byte {
	buf, err := st.decodeChecked(i, buf, st.size+st.recSize)
	if err != nil {
		panic(fmt.Sprintf("read model: a damaged block: %v", err)) // written by this process, or checked when loaded (checkSealed)
	}
	return buf
}

// decodeChecked is decode, saying what is wrong with a damaged part, and
// refusing one that claims more than limit bytes.
func (st *sealedText) decodeChecked(i int, buf []byte, limit int) ([]byte, error) {
	src := st.z[st.zat[i]:st.zat[i+1]]
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%d bytes, more than %d", n, limit)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	if d := [...]*s2.Dict{st.tdict, st.rdict}[i%2]; d != nil {
		return d.Decode(buf[:n], src)
	}
	return s2.Decode(buf[:n], src)
}

// block returns block b decompressed, from the cache or into it.
func (st *sealedText) block(b int) *openBlock {
	st.mu.Lock()
	for _, c := range st.cache {
		if c != nil && c.b == b {
			st.mu.Unlock()
			return c
		}
	}
	st.mu.Unlock()
	ob := new(openBlock)
	st.open(b, ob)
	st.mu.Lock()
	st.cache[st.next] = ob
	st.next = (st.next + 1) % len(st.cache)
	st.mu.Unlock()
	return ob
}

// open decompresses block b into ob, reusing its memory.
func (st *sealedText) open(b int, ob *openBlock) {
	ob.b, ob.texts, ob.recs = b, st.decode(2*b, ob.texts), st.decode(2*b+1, ob.recs)
	ob.at = textStarts(ob.at[:0], ob.texts)
	ob.rec = ob.rec[:0]
	for off := 0; off < len(ob.recs); {
		n, at := readUvarint(ob.recs, off)
		ob.rec = append(ob.rec, int32(at))
		off = at + int(n)
	}
}

// place returns the records, where the record of the k-th student of
// the block begins in them, and its text.
func (ob *openBlock) place(k int) (recs []byte, off int, search []byte) {
	return ob.recs, int(ob.rec[k]), ob.texts[ob.at[k] : ob.at[k+1]-1]
}

// blockReader reads the students of a sealed snapshot in place order,
// one block at a time in its own memory (reused: no garbage per block,
// and the shared cache is left alone). What it returns is valid until
// its next call.
type blockReader struct {
	sn *snapshot
	ob openBlock
	ok bool
}

func (r *blockReader) parse(pos int, want uint32, buf []byte) studentView {
	st := r.sn.sealed
	if st == nil {
		return r.sn.parse(pos, want, buf)
	}
	if b := pos / st.per; !r.ok || r.ob.b != b {
		st.open(b, &r.ob)
		r.ok = true
	}
	b, off, search := r.ob.place(pos % st.per)
	return r.sn.parseRec(pos, want, buf, b, off, search)
}

// studentsAt returns the students at places, in that order: read in place
// order, each block decompressed once (a page of a class scattered over
// the school, "all" of it: up to 1,000 students).
func (sn *snapshot) studentsAt(places []int) []Student {
	out := make([]Student, len(places))
	if sn.sealed == nil {
		for i, p := range places {
			out[i] = sn.student(p)
		}
		return out
	}
	order := make([]int, len(places))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(places[a], places[b]) })
	r := blockReader{sn: sn}
	for _, i := range order {
		v := r.parse(places[i], allTexts, nil)
		out[i] = v.student()
	}
	return out
}

// sealedAt returns the records of the block of the student at pos
// (sealed), where its record begins in them, and its text.
func (sn *snapshot) sealedAt(pos int) (recs []byte, off int, search []byte) {
	st := sn.sealed
	return st.block(pos / st.per).place(pos % st.per)
}

// eachText calls f with the texts in pieces, in place order: the arena
// whole, or each block's decompressed (into one buffer, reused: f must
// not keep it), with where each student's text begins in it (at) and the
// place of its first student.
func (sn *snapshot) eachText(f func(text []byte, at []int32, first int)) {
	st := sn.sealed
	if st == nil {
		f(sn.text, sn.at, 0)
		return
	}
	var buf []byte
	var at []int32
	for b := range st.blocks() {
		buf = st.decode(2*b, buf)
		at = textStarts(at[:0], buf)
		f(buf, at[:len(at)-1], b*st.per)
	}
}

// bytes is about what the sealed form holds in memory.
func (st *sealedText) bytes() int {
	if st == nil {
		return 0
	}
	return len(st.z) + 4*len(st.zat) + len(st.regs) + 4*len(st.regAt) + st.dictSize
}
