package store

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// trigramIndex finds the candidates of a search without reading every
// student's search text: it maps each byte trigram (three consecutive
// bytes) of the folded search texts to the ascending IDs of the students
// whose text holds it. A word of three bytes or more can only occur in a
// text that holds each of its trigrams, so the intersection of their
// lists holds every match (and some texts that hold the trigrams apart:
// candidates are checked with matchesAll, so the answers are exactly
// those of a full pass). Words shorter than three bytes have no trigram:
// a query made of short words only is answered by the full pass.
//
// Bytes, not runes: folded text is UTF-8, and a substring's bytes are the
// text's bytes, so byte trigrams are as exact and need no decoding. An
// index belongs to one snapshot, hence to one Store (one school's
// database).
//
// Compact (issue 20: an app's memory): the lists are built once, as
// differences between ascending IDs in uvarints (about a byte each at a
// school's density: 3 MB instead of 8.8 MB as int32 at 100,000), all in
// one byte array with no pointers. Writes do not rewrite them: a student
// whose text is new or changed has its trigrams added to small lists
// beside them (more), and a student removed or changed is left in the
// lists it was in (a candidate that no longer holds the trigram fails
// the check, one no longer there is skipped). When what was added or
// left since the build weighs a sixteenth of the index, its owner builds
// it again (worn).
type trigramIndex struct {
	grams []uint32 // the trigrams, ascending
	ends  []uint32 // ends[i]: where grams[i]'s list ends in lists (and grams[i+1]'s begins)
	lists []byte   // per trigram: the first ID as a varint, then differences as uvarints
	size  int      // IDs in lists
	more  map[uint32][]int64
	wear  int // IDs added to more, and students left in lists, since the build
}

// trigramsOf appends the distinct trigrams of s to buf, sorted.
func trigramsOf[T string | []byte](s T, buf []uint32) []uint32 {
	start := len(buf)
	for i := 0; i+3 <= len(s); i++ {
		buf = append(buf, uint32(s[i])<<16|uint32(s[i+1])<<8|uint32(s[i+2]))
	}
	tail := buf[start:]
	slices.Sort(tail)
	return append(buf[:start], slices.Compact(tail)...)
}

// buildTrigramIndex indexes the search texts of a snapshot's columns
// (ids ascending; text and at as in snapshot). Two passes: the first
// measures each list, the second writes it in place.
func buildTrigramIndex(ids []int64, text []byte, at []int32) *trigramIndex {
	type list struct {
		n    int32
		size uint32 // bytes; after the first pass, where its next ID goes
		last int64
	}
	searchAt := func(pos int) []byte {
		end := len(text)
		if pos+1 < len(at) {
			end = int(at[pos+1]) - 1
		}
		return text[at[pos]:end]
	}
	index := make(map[uint32]int32, 4096)
	var acc []list
	var buf []uint32
	for pos, id := range ids {
		buf = trigramsOf(searchAt(pos), buf[:0])
		for _, t := range buf {
			k, ok := index[t]
			if !ok {
				k = int32(len(acc))
				index[t] = k
				acc = append(acc, list{})
			}
			l := &acc[k]
			if l.n == 0 {
				l.size += uint32(varintLen(zigzag(id)))
			} else {
				l.size += uint32(varintLen(uint64(id - l.last)))
			}
			l.n++
			l.last = id
		}
	}
	x := &trigramIndex{grams: make([]uint32, 0, len(index)), ends: make([]uint32, len(index))}
	for t := range index {
		x.grams = append(x.grams, t)
	}
	slices.Sort(x.grams)
	var total uint32
	for i, t := range x.grams {
		l := &acc[index[t]]
		size := l.size
		l.size, l.n = total, 0 // now: where its next ID goes
		total += size
		x.ends[i] = total
	}
	x.lists = make([]byte, total)
	for pos, id := range ids {
		buf = trigramsOf(searchAt(pos), buf[:0])
		for _, t := range buf {
			l := &acc[index[t]]
			var n int
			if l.n == 0 {
				n = binary.PutUvarint(x.lists[l.size:], zigzag(id))
			} else {
				n = binary.PutUvarint(x.lists[l.size:], uint64(id-l.last))
			}
			l.size += uint32(n)
			l.n++
			l.last = id
			x.size++
		}
	}
	return x
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// list returns the stored list of trigram t (nil when none).
func (x *trigramIndex) list(t uint32) []byte {
	i, found := slices.BinarySearch(x.grams, t)
	if !found {
		return nil
	}
	var start uint32
	if i > 0 {
		start = x.ends[i-1]
	}
	return x.lists[start:x.ends[i]]
}

// postings reads a stored list in order.
type postings struct {
	b    []byte
	off  int
	last int64
}

func (p *postings) next() (int64, bool) {
	if p.off >= len(p.b) {
		return 0, false
	}
	if c := p.b[p.off]; c < 0x80 && p.off > 0 { // most differences: one byte
		p.last += int64(c)
		p.off++
		return p.last, true
	}
	v, n := binary.Uvarint(p.b[p.off:])
	if p.off == 0 {
		p.last = int64(v>>1) ^ -int64(v&1)
	} else {
		p.last += int64(v)
	}
	p.off += n
	return p.last, true
}

// add indexes a student's new search text. A nil index (not built yet: a
// model from its saved copy builds it after its first answers) does
// nothing, and has no candidates.
func (x *trigramIndex) add(id int64, search string) {
	if x == nil {
		return
	}
	if x.more == nil {
		x.more = map[uint32][]int64{}
	}
	for _, t := range trigramsOf(search, nil) {
		l := x.more[t]
		if i, found := slices.BinarySearch(l, id); !found {
			x.more[t] = slices.Insert(l, i, id)
			x.wear++
		}
	}
}

// replaced is add for a student whose search text changed: its old
// trigrams' lists keep it.
func (x *trigramIndex) replaced(id int64, search string) {
	if x == nil {
		return
	}
	x.wear++
	x.add(id, search)
}

// removed counts a student removed (left in its lists).
func (x *trigramIndex) removed() {
	if x != nil {
		x.wear++
	}
}

// worn reports whether the index should be built again.
func (x *trigramIndex) worn() bool {
	return x != nil && x.wear > max(1024, x.size/16)
}

// candidates returns, ascending, the IDs of the students whose text may
// hold every trigram of every word of three bytes or more (with some no
// longer there); ok is false when no word is that long (the caller must
// read every text).
func (x *trigramIndex) candidates(words []string) (ids []int64, ok bool) {
	if x == nil {
		return nil, false
	}
	var ts []uint32
	for _, w := range words {
		if len(w) >= 3 {
			ts = trigramsOf(w, ts)
		}
	}
	if len(ts) == 0 {
		return nil, false
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	type gram struct {
		stored []byte
		more   []int64
	}
	grams := make([]gram, 0, len(ts))
	for _, t := range ts {
		g := gram{x.list(t), x.more[t]}
		if len(g.stored) == 0 && len(g.more) == 0 {
			return nil, true
		}
		grams = append(grams, g)
	}
	// The shortest list read whole, the others walked beside it.
	slices.SortFunc(grams, func(a, b gram) int { return cmp.Compare(len(a.stored)+8*len(a.more), len(b.stored)+8*len(b.more)) })
	p := postings{b: grams[0].stored}
	for id, ok := p.next(); ok; id, ok = p.next() {
		ids = append(ids, id)
	}
	if len(grams[0].more) > 0 {
		ids = mergeIDs(ids, grams[0].more)
	}
	for _, g := range grams[1:] {
		// Few candidates beside a long list: checking them costs less
		// than walking it (they are checked anyway).
		if len(ids) == 0 || len(ids)*32 < len(g.stored) {
			break
		}
		out := ids[:0]
		p := postings{b: g.stored}
		cur, more := p.next()
		for _, id := range ids {
			for more && cur < id {
				cur, more = p.next()
			}
			if more && cur == id {
				out = append(out, id)
				continue
			}
			if _, found := slices.BinarySearch(g.more, id); found {
				out = append(out, id)
			}
		}
		ids = out
	}
	return ids, true
}

// mergeIDs is the ascending union of two ascending lists.
func mergeIDs(a, b []int64) []int64 {
	out := make([]int64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}
