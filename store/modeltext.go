package store

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
)

// A loaded model's search texts are sealed: kept compressed, in blocks of
// textBlock students, instead of as one byte arena (issue 20: the app of
// a 100,000-student school in 60 MB of RSS; with every schema 3 field
// filled the texts were 12.3 MB, over half the model). What stays
// uncompressed is what is read at random and often: the sort keys at the
// start of each search text (every order's comparisons read them), and
// where each text begins (at).
//
// A search decompresses every block once, into one buffer, and runs the
// same pass over it as over the arena (matchIn). A student's fields are
// read from its block, decompressed on first use and kept among the last
// few (a page of a list touches a few blocks; a pass in ID order one at
// a time). A change (put, remove: the journal's entries, an import)
// unseals the texts first (they are one arena again, as before) and the
// Store seals them again after it, in the background (sealModel).
//
// The trade-off, measured (docs/BENCHMARKS.md, helper "dense"): at
// 100,000 students every field filled, s2 at 128 students a block takes
// the texts from 12.3 MB to about 3.8 MB, the keys 2.8 MB more; a search
// that no cache answers decompresses 12.3 MB (a few milliseconds); a
// single change of a sealed model costs one decompression and one
// compression of every block more than before (tens of milliseconds, in
// the background). s2 rather than zstd: several times faster to
// decompress, and it keeps no decoder state between uses.
const (
	textBlock      = 128 // students per sealed block
	textCachedBlks = 4   // decompressed blocks a sealed model keeps
)

type sealedText struct {
	per  int      // students per block (textBlock; fewer in tests)
	z    []byte   // the blocks, each compressed (s2), one after the other
	zat  []uint32 // zat[b]: where block b begins in z; zat[len-1] = len(z)
	size int      // the texts' length unsealed (at holds places in it)
	// heads are the sort keys of every student whose search text begins
	// with them (recKeysInSearch), as they stand there (joined by ' '):
	// hat[pos] is where they begin.
	heads []byte
	hat   []int32

	mu    sync.Mutex
	cache [textCachedBlks]struct {
		b   int
		raw []byte // nil: an empty slot
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

// textLen is the length of the texts unsealed.
func (sn *snapshot) textLen() int {
	if sn.sealed != nil {
		return sn.sealed.size
	}
	return len(sn.text)
}

// sealText makes the sealed form of sn's texts, per students a block,
// reading sn only.
func (sn *snapshot) sealText(per int) *sealedText {
	n := len(sn.ids)
	st := &sealedText{per: per, size: len(sn.text), hat: make([]int32, n)}
	blocks := (n + per - 1) / per
	st.zat = make([]uint32, 0, blocks+1)
	z := make([]byte, 0, len(sn.text)/3)
	var scratch []byte
	for b := range blocks {
		start, end := sn.blockSpan(b, per, len(sn.text))
		if need := s2.MaxEncodedLen(end - start); cap(scratch) < need {
			scratch = make([]byte, need)
		}
		st.zat = append(st.zat, uint32(len(z)))
		z = append(z, s2.Encode(scratch[:cap(scratch)], sn.text[start:end])...)
	}
	st.zat = append(st.zat, uint32(len(z)))
	heads := make([]byte, 0, 32*n)
	for pos := range n {
		st.hat[pos] = int32(len(heads))
		if n := sn.headLen(pos); n > 0 {
			heads = append(heads, sn.text[sn.at[pos]:int(sn.at[pos])+n]...)
		}
	}
	st.z, st.heads = fit(z), fit(heads)
	return st
}

// headLen is how many bytes of the search text at pos its sort keys take
// (0: they are not there, but in its record).
func (sn *snapshot) headLen(pos int) int {
	b, off := sn.recs, int(sn.rec[pos])
	if b[off]&recKeysInSearch == 0 {
		return 0
	}
	off++
	n := numKeys - 1
	for range numKeys {
		var k uint64
		k, off = readUvarint(b, off)
		n += int(k)
	}
	return n
}

// seal seals sn's texts now (a snapshot no one else sees yet, or under
// the model's write lock).
func (sn *snapshot) seal() { sn.sealBy(textBlock) }

func (sn *snapshot) sealBy(per int) {
	if sn.sealed == nil && len(sn.ids) > 0 {
		sn.sealed, sn.text = sn.sealText(per), nil
	}
}

// unseal makes the texts one arena again, before a change.
func (sn *snapshot) unseal() {
	st := sn.sealed
	if st == nil {
		return
	}
	text := make([]byte, 0, st.size)
	var buf []byte
	for b := range len(st.zat) - 1 {
		buf = st.decode(b, buf)
		text = append(text, buf...)
	}
	sn.text, sn.sealed = text, nil
}

// decode decompresses block b into buf (grown when too small).
func (st *sealedText) decode(b int, buf []byte) []byte {
	src := st.z[st.zat[b]:st.zat[b+1]]
	n, err := s2.DecodedLen(src)
	if err == nil {
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf, err = s2.Decode(buf[:n], src)
	}
	if err != nil {
		panic(fmt.Sprintf("read model: a damaged block of texts: %v", err)) // written by this process
	}
	return buf
}

// block returns block b decompressed, from the cache or into it. The
// bytes are never changed after: they may be kept while sn is read.
func (st *sealedText) block(b int) []byte {
	st.mu.Lock()
	for _, c := range st.cache {
		if c.raw != nil && c.b == b {
			st.mu.Unlock()
			return c.raw
		}
	}
	st.mu.Unlock()
	raw := st.decode(b, nil)
	st.mu.Lock()
	st.cache[st.next].b, st.cache[st.next].raw = b, raw
	st.next = (st.next + 1) % len(st.cache)
	st.mu.Unlock()
	return raw
}

// sealedSearch is search for a sealed snapshot.
func (sn *snapshot) sealedSearch(pos int) []byte {
	st := sn.sealed
	b := pos / st.per
	raw := st.block(b)
	start, _ := sn.blockSpan(b, st.per, st.size)
	end := st.size
	if pos+1 < len(sn.at) {
		end = int(sn.at[pos+1]) - 1
	}
	return raw[int(sn.at[pos])-start : end-start]
}

// keysText returns the start of the search text at pos that holds its keys
// (recKeysInSearch): without decompressing anything when sealed.
func (sn *snapshot) keysText(pos int) []byte {
	if st := sn.sealed; st != nil {
		return st.heads[st.hat[pos]:]
	}
	return sn.search(pos)
}

// eachText calls f with the texts in pieces, in place order: the arena
// whole, or each block decompressed (into one buffer, reused: f must not
// keep it). base is where text[0] is in the unsealed arena, and the
// students first up to end have their texts there.
func (sn *snapshot) eachText(f func(text []byte, base, first, end int)) {
	st := sn.sealed
	if st == nil {
		f(sn.text, 0, 0, len(sn.ids))
		return
	}
	var buf []byte
	for b := range len(st.zat) - 1 {
		buf = st.decode(b, buf)
		start, _ := sn.blockSpan(b, st.per, st.size)
		f(buf, start, b*st.per, min((b+1)*st.per, len(sn.ids)))
	}
}

// bytes is about what the sealed texts hold in memory.
func (st *sealedText) bytes() int {
	if st == nil {
		return 0
	}
	return len(st.z) + 4*len(st.zat) + len(st.heads) + 4*len(st.hat)
}
