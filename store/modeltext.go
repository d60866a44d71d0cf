package store

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
)

// A loaded model is sealed: its search texts and records are kept
// compressed, in blocks of textBlock students, instead of as two byte
// arenas (issue 20: the app of a 100,000-student school in 60 MB of RSS;
// with every schema 3 field filled the texts were 12.3 MB and the
// records 7.7 MB of a 22.8 MB model). What stays uncompressed is what is
// read at random and often: the IDs and orders, where each text and
// record begins, and each student's registration number key (the order
// by it is searched before every create and import row; the name orders
// are walked, not searched, when sealed: page).
//
// A search decompresses every block's texts (the records are compressed
// apart) into one buffer and runs the same pass over it as over the
// arena (matchIn). A student's fields are read from its block,
// decompressed on first use and kept among the last few (a page of a
// list touches a few blocks; a pass in ID order one at a time). A change
// (put, remove: the journal's entries, an import) unseals the model
// first (two arenas again, as before) and the Store seals it again
// after, in the background (sealModel).
//
// The trade-off, measured (docs/BENCHMARKS.md, helper "dense"): at
// 100,000 students every field filled, the model takes 11.4 MB instead
// of 22.8; a search that no cache answers decompresses 12.3 MB of texts
// (about 4 ms); a page of a list sorted by name decompresses a block per
// row (tens of microseconds each); a single change of a sealed model
// costs one decompression and one compression of every block more than
// before (about 10 + 100 ms, in the background). s2 rather than zstd:
// several times faster to decompress, and it keeps no decoder state
// between uses; its "better" mode and 256 students a block take 1 MB
// less than its fastest mode at 128, decompressing as fast.
const (
	textBlock      = 256 // students per sealed block
	textCachedBlks = 4   // decompressed blocks a sealed model keeps
)

type sealedText struct {
	per int // students per block (textBlock; fewer in tests)
	// z holds every block's texts, then its records, each compressed
	// (s2) on its own (a search decompresses the texts only): zat[2b] is
	// where block b's texts begin, zat[2b+1] its records; then len(z).
	z    []byte
	zat  []uint32
	size int // the texts' length unsealed (at holds places in it)
	// rec is where each record begins in the records of every block one
	// after the other, which are in place order (no garbage: seal
	// compacts them).
	rec     []uint32
	recSize int
	// regs are the registration number keys (length, then the key):
	// regAt[pos] is where the student's begins. The order by registration
	// number is searched by them (a look-up before every create, every
	// import row); the name orders are walked instead (page).
	regs  []byte
	regAt []int32

	mu    sync.Mutex
	cache [textCachedBlks]struct {
		b, split int
		raw      []byte // its texts up to split, then its records; nil: an empty slot
	}
	next int
}

// blockSpan is where block b's texts are in the unsealed arena: from the
// '\n' before its first student to the end of its last one's text.
func (sn *snapshot) blockSpan(b, per, size int) (start, end int) {
	first := b * per
	start = int(sn.at[first]) - 1
	end = size
	if next := first + per; next < len(sn.at) {
		end = int(sn.at[next]) - 1
	}
	return start, end
}

// recSpan is where block b's records are in rec's places.
func (st *sealedText) recSpan(b int) (start, end int) {
	first := b * st.per
	start, end = int(st.rec[first]), st.recSize
	if next := first + st.per; next < len(st.rec) {
		end = int(st.rec[next])
	}
	return start, end
}

// sealText makes the sealed form of sn's texts and records, per students
// a block, reading sn only.
func (sn *snapshot) sealText(per int) *sealedText {
	n := len(sn.ids)
	st := &sealedText{per: per, size: len(sn.text), regAt: make([]int32, n), rec: make([]uint32, n)}
	recs := make([]byte, 0, len(sn.recs)-sn.dead)
	regs := make([]byte, 0, 16*n)
	for pos := range n {
		v := sn.rawView(pos)
		st.rec[pos] = uint32(len(recs))
		recs = append(recs, v.raw...)
		st.regAt[pos] = int32(len(regs))
		regs = appendString(regs, v.keys[ordRegNo])
	}
	st.recSize = len(recs)
	blocks := (n + per - 1) / per
	st.zat = make([]uint32, 0, 2*blocks+1)
	z := make([]byte, 0, (len(sn.text)+len(recs))/3)
	var scratch []byte
	for b := range blocks {
		rs, re := st.recSpan(b)
		ts, te := sn.blockSpan(b, per, len(sn.text))
		for _, raw := range [...][]byte{sn.text[ts:te], recs[rs:re]} {
			if need := s2.MaxEncodedLen(len(raw)); cap(scratch) < need {
				scratch = make([]byte, need)
			}
			st.zat = append(st.zat, uint32(len(z)))
			z = append(z, s2.EncodeBetter(scratch[:cap(scratch)], raw)...)
		}
	}
	st.zat = append(st.zat, uint32(len(z)))
	st.z, st.regs = fit(z), fit(regs)
	return st
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

// regKey is the registration number key of the student at pos of a
// sealed snapshot.
func (st *sealedText) regKey(pos int) []byte {
	k, _ := readBytes(st.regs, int(st.regAt[pos]))
	return k
}

// seal seals sn's texts now (a snapshot no one else sees yet, or under
// the model's write lock).
func (sn *snapshot) seal() { sn.sealBy(textBlock) }

func (sn *snapshot) sealBy(per int) {
	if sn.sealed == nil && len(sn.ids) > 0 {
		sn.install(sn.sealText(per))
	}
}

// install replaces sn's texts and records by their sealed form st.
func (sn *snapshot) install(st *sealedText) {
	sn.sealed, sn.text, sn.recs, sn.rec, sn.dead = st, nil, nil, st.rec, 0
}

// unseal makes the texts and records arenas again, before a change.
func (sn *snapshot) unseal() {
	st := sn.sealed
	if st == nil {
		return
	}
	text, recs := make([]byte, 0, st.size), make([]byte, 0, st.recSize)
	var buf []byte
	for b := range st.blocks() {
		buf = st.decode(2*b, buf)
		text = append(text, buf...)
		buf = st.decode(2*b+1, buf)
		recs = append(recs, buf...)
	}
	sn.text, sn.recs, sn.sealed = text, recs, nil
}

func (st *sealedText) blocks() int { return (len(st.zat) - 1) / 2 }

// decode decompresses part i of z (zat) into buf (grown when too small).
func (st *sealedText) decode(i int, buf []byte) []byte {
	return st.decodeAt(i, buf, 0)
}

func (st *sealedText) decodedLen(i int) int {
	n, err := s2.DecodedLen(st.z[st.zat[i]:st.zat[i+1]])
	if err != nil {
		panic(fmt.Sprintf("read model: a damaged block: %v", err)) // written by this process
	}
	return n
}

// decodeAt decompresses part i of z into buf[at:], returning buf up to its
// end.
func (st *sealedText) decodeAt(i int, buf []byte, at int) []byte {
	src := st.z[st.zat[i]:st.zat[i+1]]
	n, err := s2.DecodedLen(src)
	if err == nil {
		if cap(buf) < at+n {
			buf = append(buf[:at], make([]byte, n)...)
		}
		buf = buf[:at+n]
		_, err = s2.Decode(buf[at:], src)
	}
	if err != nil {
		panic(fmt.Sprintf("read model: a damaged block: %v", err)) // written by this process
	}
	return buf
}

// block returns block b's texts and records decompressed, from the
// cache or into it. The bytes are never changed after: they may be kept
// while sn is read.
func (st *sealedText) block(b int) (texts, recs []byte) {
	st.mu.Lock()
	for _, c := range st.cache {
		if c.raw != nil && c.b == b {
			st.mu.Unlock()
			return c.raw[:c.split], c.raw[c.split:]
		}
	}
	st.mu.Unlock()
	nt := st.decodedLen(2 * b)
	raw := make([]byte, 0, nt+st.decodedLen(2*b+1))
	raw = st.decodeAt(2*b+1, st.decodeAt(2*b, raw, 0), nt)
	st.mu.Lock()
	st.cache[st.next].b, st.cache[st.next].raw, st.cache[st.next].split = b, raw, nt
	st.next = (st.next + 1) % len(st.cache)
	st.mu.Unlock()
	return raw[:nt], raw[nt:]
}

// sealedAt returns the records of the block of the student at pos
// (sealed), where its record begins in them, and its text.
func (sn *snapshot) sealedAt(pos int) (recs []byte, off int, search []byte) {
	st := sn.sealed
	b := pos / st.per
	texts, recs := st.block(b)
	rs, _ := st.recSpan(b)
	start, _ := sn.blockSpan(b, st.per, st.size)
	end := st.size
	if pos+1 < len(sn.at) {
		end = int(sn.at[pos+1]) - 1
	}
	return recs, int(st.rec[pos]) - rs, texts[int(sn.at[pos])-start : end-start]
}

// eachText calls f with the texts in pieces, in place order: the arena
// whole, or each block's decompressed (into one buffer, reused: f must
// not keep it). base is where text[0] is in the unsealed arena, and the
// students first up to end have their texts there.
func (sn *snapshot) eachText(f func(text []byte, base, first, end int)) {
	st := sn.sealed
	if st == nil {
		f(sn.text, 0, 0, len(sn.ids))
		return
	}
	var buf []byte
	for b := range st.blocks() {
		buf = st.decode(2*b, buf)
		start, _ := sn.blockSpan(b, st.per, st.size)
		f(buf, start, b*st.per, min((b+1)*st.per, len(sn.ids)))
	}
}

// bytes is about what the sealed form holds in memory (rec is counted
// with the columns).
func (st *sealedText) bytes() int {
	if st == nil {
		return 0
	}
	return len(st.z) + 4*len(st.zat) + len(st.regs) + 4*len(st.regAt)
}
