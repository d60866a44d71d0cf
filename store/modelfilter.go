package store

import (
	"bytes"
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

// filtered marks, by pos, the students that pass o's filters, remembered
// (the bitset returned is shared: not to be modified).
func (sn *snapshot) filtered(o ListOptions) ([]uint64, int64) {
	key := filterKey(o)
	if bits, total, ok := sn.cached(key); ok {
		return bits, total
	}
	status := uint64(0)
	if o.Status != "" {
		status = statusCode(o.Status)
	}
	var from, to uint64
	if o.EnrolledYear != 0 {
		from, to = dateCode(yearStart(o.EnrolledYear)), dateCode(yearStart(o.EnrolledYear+1))
		if from == 0 { // before the model's first day: nobody
			from, to = 1, 1
		}
		if to == 0 {
			to = ^uint64(0)
		}
	}
	bits := make([]uint64, (len(sn.ids)+63)/64)
	var total int64
	for pos := range sn.ids {
		v := sn.view(pos)
		switch {
		case o.Class != "" && string(v.texts[textClass]) != o.Class:
		case o.Status != "" && !(v.nums[numStatus] == status || status == 1 && v.nums[numStatus] == 0):
		case o.EnrolledYear != 0 && (v.nums[numEnrolled] < from || v.nums[numEnrolled] >= to):
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

// facets counts the students by class, status and enrolment year,
// remembered until the students change.
func (sn *snapshot) facets() Facets {
	sn.cmu.Lock()
	f := sn.facetCache
	sn.cmu.Unlock()
	if f != nil {
		return *f
	}
	classes, statuses, years := map[string]int64{}, map[string]int64{}, map[string]int64{}
	yearOf := map[uint64]string{} // enrolment date code → year, computed once per day
	for pos := range sn.ids {
		v := sn.view(pos)
		classes[string(v.texts[textClass])]++
		statuses[statusOf(v.nums[numStatus])]++
		code := v.nums[numEnrolled]
		y, ok := yearOf[code]
		if !ok {
			if d := codeDate(code); d != "" {
				y = d[:4]
			}
			yearOf[code] = y
		}
		years[y]++
	}
	out := Facets{Classes: facetList(classes), Statuses: statusFacets(facetList(statuses)), EnrolledYears: facetList(years)}
	sn.cmu.Lock()
	sn.facetCache = &out
	sn.cmu.Unlock()
	return out
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
