package store

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

func bits0(w uint64) int { return bits.TrailingZeros64(w) }

// The list's filters (class, status, enrolment year) and their counts,
// answered by the read model: one pass over the records, remembered with
// the searches' matches until the students change.

// filterKey is the matches cache's key of o's filters: it starts with a
// byte no folded word holds (Fold drops control characters).
func filterKey(o ListOptions) string {
	return "\x01" + o.Class + "\x00" + o.Status + "\x00" + strconv.Itoa(o.EnrolledYear)
}

// filterCols are the filter fields of every student by pos, made in one
// pass over the records the first time a filter or the counts need them
// after a change (0.5 MB at 100,000 students): then a filter is a pass
// over small numbers.
type filterCols struct {
	classes []string // class names; class[pos] indexes them
	class   []uint32
	status  []uint8  // statusCode
	year    []uint16 // enrolment year, 0 when unknown
}

// cols returns the snapshot's filter columns, made if needed.
func (sn *snapshot) cols() *filterCols {
	sn.cmu.Lock()
	fc := sn.filterCache
	sn.cmu.Unlock()
	if fc != nil {
		return fc
	}
	fc = &filterCols{class: make([]uint32, len(sn.ids)), status: make([]uint8, len(sn.ids)), year: make([]uint16, len(sn.ids))}
	index := map[string]uint32{}
	years := map[uint64]uint16{} // enrolment date code → year, computed once per day
	for pos := range sn.ids {
		v := sn.view(pos)
		c, ok := index[string(v.texts[textClass])]
		if !ok {
			c = uint32(len(fc.classes))
			fc.classes = append(fc.classes, string(v.texts[textClass]))
			index[fc.classes[c]] = c
		}
		fc.class[pos] = c
		fc.status[pos] = uint8(v.nums[numStatus])
		code := v.nums[numEnrolled]
		y, ok := years[code]
		if !ok {
			if d := codeDate(code); d != "" {
				n, _ := strconv.Atoi(d[:4])
				y = uint16(n)
			}
			years[code] = y
		}
		fc.year[pos] = y
	}
	sn.cmu.Lock()
	sn.filterCache = fc
	sn.cmu.Unlock()
	return fc
}

// filtered marks, by pos, the students that pass o's filters, remembered
// (the bitset returned is shared: not to be modified).
func (sn *snapshot) filtered(o ListOptions) ([]uint64, int64) {
	key := filterKey(o)
	if bits, total, ok := sn.cached(key); ok {
		return bits, total
	}
	fc := sn.cols()
	class := -1 // any
	if o.Class != "" {
		class = -2 // none holds it
		if i := slices.Index(fc.classes, o.Class); i >= 0 {
			class = i
		}
	}
	status := uint8(statusCode(o.Status))
	bits := make([]uint64, (len(sn.ids)+63)/64)
	var total int64
	for pos := range sn.ids {
		switch {
		case class != -1 && int(fc.class[pos]) != class:
		case o.Status != "" && !(fc.status[pos] == status || status == 1 && fc.status[pos] == 0):
		case o.EnrolledYear != 0 && int(fc.year[pos]) != o.EnrolledYear:
		default:
			bits[pos/64] |= 1 << (pos % 64)
			total++
		}
	}
	sn.remember(key, bits, total)
	return bits, total
}

func yearStart(y int) string {
	if y < 1 || y > 9999 {
		return ""
	}
	s := strconv.Itoa(y)
	for len(s) < 4 {
		s = "0" + s
	}
	return s + "-01-01"
}

// selection is the students of o's query and filters, by pos (nil with
// total -1: every student).
func (sn *snapshot) selection(words []string, o ListOptions) ([]uint64, int64) {
	match := sn.match
	if o.NamesOnly {
		match = sn.matchNames
	}
	switch {
	case len(words) == 0 && !o.Filtered():
		return nil, -1
	case !o.Filtered():
		return match(words)
	case len(words) == 0:
		return sn.filtered(o)
	}
	a, _ := match(words)
	b, _ := sn.filtered(o)
	both := make([]uint64, len(a))
	var total int64
	for i := range both {
		both[i] = a[i] & b[i]
		total += int64(bitCount(both[i]))
	}
	return both, total
}

// facets counts the students by class, status and enrolment year.
func (sn *snapshot) facets() Facets {
	fc := sn.cols()
	classes := make([]int64, len(fc.classes))
	var statuses [256]int64
	byYear := map[uint16]int64{}
	for pos := range sn.ids {
		classes[fc.class[pos]]++
		statuses[fc.status[pos]]++
		byYear[fc.year[pos]]++
	}
	byStatus := map[string]int64{}
	for code, n := range statuses {
		if n > 0 {
			byStatus[statusOf(uint64(code))] += n
		}
	}
	years := map[string]int64{}
	for y, n := range byYear {
		if y == 0 {
			years[""] += n
		} else {
			years[fmt.Sprintf("%04d", y)] += n
		}
	}
	byClass := map[string]int64{}
	for i, n := range classes {
		byClass[fc.classes[i]] = n
	}
	return Facets{Classes: facetList(byClass), Statuses: statusFacets(facetList(byStatus)), EnrolledYears: facetList(years)}
}

// matchNames is match within the registration number and names (the
// search text's keys), remembered.
func (sn *snapshot) matchNames(words []string) ([]uint64, int64) {
	sorted := slices.Clone(words)
	slices.Sort(sorted)
	key := "\x02" + strings.Join(sorted, "\n")
	if bits, total, ok := sn.cached(key); ok {
		return bits, total
	}
	all, _ := sn.match(words)
	needles := wordBytes(words)
	bits := make([]uint64, len(all))
	var total int64
	for w, word := range all {
		for word != 0 {
			pos := w*64 + bits0(word)
			word &= word - 1
			if matchesAll(sn.head(pos), needles) {
				bits[w] |= 1 << (pos % 64)
				total++
			}
		}
	}
	sn.remember(key, bits, total)
	return bits, total
}

// head is the keys of the student at pos joined by spaces: what the
// search text held before schema 3.
func (sn *snapshot) head(pos int) []byte {
	v := sn.view(pos)
	if v.flags&recKeysInSearch != 0 {
		n := numKeys - 1
		for _, k := range v.keys {
			n += len(k)
		}
		return v.search[:n]
	}
	return bytes.Join(v.keys[:], []byte{' '})
}
