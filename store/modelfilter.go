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
	return "\x01" + ClassKey(o.Class) + "\x00" + o.Status + "\x00" + strconv.Itoa(o.EnrolledYear)
}

// filterCols are the filter fields of every student by pos, made in one
// pass over the records the first time a filter or the counts need them
// after a change (0.5 MB at 100,000 students): then a filter is a pass
// over small numbers.
type filterCols struct {
	classes []string // classes as written; class[pos] indexes them
	keys    []string // ClassKey of each of classes
	class   []uint32
	status  []uint8      // statusCode
	year    []uint16     // enrolment year, 0 when unknown
	school  schoolFacets // the whole school's counts, made once (facetzeros.go)
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
	index := map[string]uint32{} // class as written → its place in classes
	years := map[uint64]uint16{} // enrolment date code → year, computed once per day
	var scratch [256]byte
	r := blockReader{sn: sn} // in place order: each block decompressed once, no garbage
	for pos := range sn.ids {
		v := r.parse(pos, 1<<textClass, scratch[:0])
		c, ok := index[string(v.texts[textClass])]
		if !ok {
			c = uint32(len(fc.classes))
			fc.classes = append(fc.classes, string(v.texts[textClass]))
			fc.keys = append(fc.keys, ClassKey(fc.classes[c]))
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
	var inClass []bool // by place in fc.classes; nil: any class
	if o.Class != "" {
		key := ClassKey(o.Class)
		inClass = make([]bool, len(fc.classes))
		for i, k := range fc.keys {
			inClass[i] = k == key
		}
	}
	status := uint8(statusCode(o.Status))
	bits := make([]uint64, (len(sn.ids)+63)/64)
	var total int64
	for pos := range sn.ids {
		switch {
		case inClass != nil && !inClass[fc.class[pos]]:
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

// facets counts the students of o's search by class, status and
// enrolment year, each narrowed by o's other filters (Django 5's facets):
// the class counts follow the status and year chosen, not the class.
// Every status, class and year of the school is offered, at 0 where the
// search and filters leave none (withZeros).
func (sn *snapshot) facets(o ListOptions) Facets {
	if len(searchWords(o.Query)) == 0 && !o.Filtered() {
		school := sn.schoolFacets()
		return withZeros(school, school)
	}
	return withZeros(sn.counts(o), sn.schoolFacets())
}

// counts is facets without the zero-count choices.
func (sn *snapshot) counts(o ListOptions) Facets {
	fc := sn.cols()
	words := searchWords(o.Query)
	noClass, noStatus, noYear := o, o, o
	noClass.Class, noStatus.Status, noYear.EnrolledYear = "", "", 0
	classes := make([]int64, len(fc.classes))
	var statuses [256]int64
	byYear := map[uint16]int64{}
	each := func(o ListOptions, count func(pos int)) {
		bits, total := sn.selection(words, o)
		if total < 0 {
			for pos := range sn.ids {
				count(pos)
			}
			return
		}
		for w, word := range bits {
			for word != 0 {
				count(w*64 + bits0(word))
				word &= word - 1
			}
		}
	}
	if len(words) == 0 && !o.Filtered() { // the whole school: one pass for the three
		for pos := range sn.ids {
			classes[fc.class[pos]]++
			statuses[fc.status[pos]]++
			byYear[fc.year[pos]]++
		}
	} else {
		each(noClass, func(pos int) { classes[fc.class[pos]]++ })
		each(noStatus, func(pos int) { statuses[fc.status[pos]]++ })
		each(noYear, func(pos int) { byYear[fc.year[pos]]++ })
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
	byClass := classFacets(len(classes), func(i int) (string, string, int64) { return fc.classes[i], fc.keys[i], classes[i] })
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
	if lens, text, ok := sn.keysAt(pos); ok {
		n := numKeys - 1
		for _, k := range lens {
			n += k
		}
		return text[:n]
	}
	v := sn.rawView(pos)
	return bytes.Join(v.keys[:], []byte{' '})
}

// classFacets counts the students of each class (n classes as written,
// with how many students have each): one count per ClassKey, named by
// the spelling most of them have (BetterSpelling). A class no student
// counted is left out, as MongoDB's $group leaves it (withZeros adds it back at 0).
func classFacets(n int, written func(i int) (name, key string, students int64)) map[string]int64 {
	type class struct {
		name   string
		shown  int64 // students of the spelling shown
		people int64
	}
	byKey := map[string]*class{}
	for i := range n {
		name, key, count := written(i)
		if count == 0 {
			continue
		}
		c := byKey[key]
		if c == nil {
			c = &class{name: name}
			byKey[key] = c
		} else if BetterSpelling(name, int(count), c.name, int(c.shown)) {
			c.name = name
		}
		if c.name == name {
			c.shown = count
		}
		c.people += count
	}
	out := make(map[string]int64, len(byKey))
	for _, c := range byKey {
		out[c.name] = c.people
	}
	return out
}
