package store

import (
	"cmp"
	"math"
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
// text's bytes, so byte trigrams are as exact and need no decoding. The
// lists hold IDs, not places, so that a create or a delete changes only
// the student's own lists. An index belongs to one snapshot, hence to
// one Store (one school's database).
//
// The IDs are kept as int32 (half the memory of the index, the biggest
// part of a model after the students themselves): a school whose IDs do
// not fit has no index (off), and every search makes the full pass.
type trigramIndex struct {
	post map[uint32][]int32
	off  bool
}

// trigramsOf appends the distinct trigrams of s to buf, sorted.
func trigramsOf(s string, buf []uint32) []uint32 {
	start := len(buf)
	for i := 0; i+3 <= len(s); i++ {
		buf = append(buf, uint32(s[i])<<16|uint32(s[i+1])<<8|uint32(s[i+2]))
	}
	tail := buf[start:]
	slices.Sort(tail)
	return append(buf[:start], slices.Compact(tail)...)
}

// buildTrigramIndex indexes docs, which must be in ascending ID order.
// The lists share one array (one allocation, no pointers to scan); each
// is capped at its length, so that a later add copies it out instead of
// writing over its neighbour.
func buildTrigramIndex(docs []*studentDoc) *trigramIndex {
	if len(docs) > 0 && docs[len(docs)-1].ID > math.MaxInt32 {
		return &trigramIndex{off: true}
	}
	var flat []uint32
	ends := make([]int32, len(docs))
	for i, doc := range docs {
		flat = trigramsOf(doc.Search, flat)
		ends[i] = int32(len(flat))
	}
	count := make(map[uint32]int32, 1024)
	for _, t := range flat {
		count[t]++
	}
	arena := make([]int32, len(flat))
	x := &trigramIndex{post: make(map[uint32][]int32, len(count))}
	off := 0
	for t, n := range count {
		x.post[t] = arena[off : off : off+int(n)]
		off += int(n)
	}
	from := int32(0)
	for i, doc := range docs {
		for _, t := range flat[from:ends[i]] {
			x.post[t] = append(x.post[t], int32(doc.ID))
		}
		from = ends[i]
	}
	return x
}

// add indexes one student's search text. A nil index (not built yet:
// a model from its saved copy builds it after its first answers) does
// nothing, and has no candidates.
func (x *trigramIndex) add(id int64, search string) {
	if x == nil || x.off {
		return
	}
	if id > math.MaxInt32 {
		x.off, x.post = true, nil
		return
	}
	for _, t := range trigramsOf(search, nil) {
		list := x.post[t]
		i, found := slices.BinarySearch(list, int32(id))
		if !found {
			x.post[t] = slices.Insert(list, i, int32(id))
		}
	}
}

// remove forgets one student's search text (as it was indexed).
func (x *trigramIndex) remove(id int64, search string) {
	if x == nil || x.off || id > math.MaxInt32 {
		return
	}
	for _, t := range trigramsOf(search, nil) {
		list := x.post[t]
		if i, found := slices.BinarySearch(list, int32(id)); found {
			list = slices.Delete(list, i, i+1)
			if len(list) == 0 {
				delete(x.post, t)
			} else {
				x.post[t] = list
			}
		}
	}
}

// candidates returns, ascending, the IDs of the students whose text holds
// every trigram of every word of three bytes or more; ok is false when no
// word is that long (the caller must read every text).
func (x *trigramIndex) candidates(words []string) (ids []int32, ok bool) {
	if x == nil || x.off {
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
	lists := make([][]int32, 0, len(ts))
	for _, t := range ts {
		list := x.post[t]
		if len(list) == 0 {
			return nil, true
		}
		lists = append(lists, list)
	}
	slices.SortFunc(lists, func(a, b []int32) int { return cmp.Compare(len(a), len(b)) })
	ids = slices.Clone(lists[0])
	for _, list := range lists[1:] {
		ids = intersect(ids, list)
		if len(ids) == 0 {
			break
		}
	}
	return ids, true
}

// intersect keeps in a (ascending) the IDs also in b (ascending), in
// place: by binary search when a is much shorter, else by merging.
func intersect(a, b []int32) []int32 {
	out := a[:0]
	if len(a)*16 < len(b) {
		for _, id := range a {
			i, found := slices.BinarySearch(b, id)
			if found {
				out = append(out, id)
			}
			b = b[i:]
		}
		return out
	}
	j := 0
	for _, id := range a {
		for j < len(b) && b[j] < id {
			j++
		}
		if j == len(b) {
			break
		}
		if b[j] == id {
			out = append(out, id)
		}
	}
	return out
}
