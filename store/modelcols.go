package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// The read model's students are kept in columns, not as one struct per
// student: an app holding a 100,000-student school pays for what the
// students are (their bytes and a few numbers), not for a struct with
// seven string headers and two time.Time each plus a pointer per student
// in every order (41.5 MB live at 100,000 before; issue 20's goal is 60 MB
// RSS for the whole app). Every column is a slice of plain numbers or
// bytes, so the garbage collector has nothing inside them to mark.
//
// A student has a place (pos): its index in the order by ID. By place:
//   - ids: the IDs, ascending (the order by ID itself; look-ups by ID are
//     binary searches of it);
//   - rec/recs: where the student's record starts in recs, one byte arena
//     of records (appendRecord): its times and every text field, length-
//     prefixed, and its sort keys when they are not parts of its search
//     text (plain and accented names alike: they are, nearly always). A
//     changed student's new record is appended and its old one left as
//     garbage until garbage is half of recs (compactRecords);
//   - text/at: the folded search texts, each after a '\n' (which folded
//     text never holds), in place order, and where each begins: a search
//     runs bytes.Index over text (matching).
//
// The other orders are places (posOf), int32.
// Adding a text field (issue 27: class, guardian, status, …) is one line
// in recordTexts and the Student field; a field to sort by also needs an
// order and a key.

// recordTexts are the text fields a record holds, in their order there:
// those lists and the search need (guardian and notes included: the
// import's comparison and the lists' bulk changes work on whole records).
var recordTexts = [...]struct {
	get func(*Student) string
	set func(*Student, string)
}{
	{func(s *Student) string { return s.RegistrationNo }, func(s *Student, v string) { s.RegistrationNo = v }},
	{func(s *Student) string { return s.FirstName }, func(s *Student, v string) { s.FirstName = v }},
	{func(s *Student) string { return s.SecondName }, func(s *Student, v string) { s.SecondName = v }},
	{func(s *Student) string { return s.Class }, func(s *Student, v string) { s.Class = v }},
	{func(s *Student) string { return s.Gender }, func(s *Student, v string) { s.Gender = v }},
	{func(s *Student) string { return s.GuardianName }, func(s *Student, v string) { s.GuardianName = v }},
	{func(s *Student) string { return s.GuardianPhone }, func(s *Student, v string) { s.GuardianPhone = v }},
	{func(s *Student) string { return s.GuardianEmail }, func(s *Student, v string) { s.GuardianEmail = v }},
	{func(s *Student) string { return s.Notes }, func(s *Student, v string) { s.Notes = v }},
}

// textClass is the place of the class in recordTexts.
const textClass = 3

// recordNums are the fields a record holds as numbers (uvarints after
// the texts): the status (statusCode) and the dates (dateCode), a few
// bytes each instead of ten.
var recordNums = [...]struct {
	get func(*Student) uint64
	set func(*Student, uint64)
}{
	{func(s *Student) uint64 { return statusCode(s.Status) }, func(s *Student, v uint64) { s.Status = statusOf(v) }},
	{func(s *Student) uint64 { return dateCode(s.DateOfBirth) }, func(s *Student, v uint64) { s.DateOfBirth = codeDate(v) }},
	{func(s *Student) uint64 { return dateCode(s.StatusDate) }, func(s *Student, v uint64) { s.StatusDate = codeDate(v) }},
	{func(s *Student) uint64 { return dateCode(s.EnrolledOn) }, func(s *Student, v uint64) { s.EnrolledOn = codeDate(v) }},
}

// places in recordNums.
const (
	numStatus   = 0
	numEnrolled = 3
)

// numKeys is the number of sort keys: the order o < numKeys sorts by key o.
const numKeys = ordID

// keysOf returns doc's sort keys, by order.
func keysOf(doc *studentDoc) [numKeys]string {
	return [numKeys]string{ordRegNo: doc.RegNoKey, ordFirst: doc.FirstNameKey, ordSecond: doc.SecondNameKey}
}

// record flags.
const (
	recKeysInSearch = 1 << iota // the search text starts with the keys joined by ' ': only the keys' lengths are kept
	recNoCreated                // created_at is the zero time
	recNoUpdated                // updated_at is the zero time
)

// keysInSearch reports whether search starts with keys joined by single
// spaces (followed by nothing or a space: the schema 3 fields' words).
func keysInSearch[T string | []byte](keys [numKeys]T, search []byte) bool {
	n := len(keys) - 1
	for _, k := range keys {
		n += len(k)
	}
	if n > len(search) || n < len(search) && search[n] != ' ' {
		return false
	}
	at := 0
	for i, k := range keys {
		if string(search[at:at+len(k)]) != string(k) {
			return false
		}
		at += len(k)
		if i < len(keys)-1 {
			if search[at] != ' ' {
				return false
			}
			at++
		}
	}
	return true
}

// appendRecord appends doc's record to b (appendFields).
func appendRecord(b []byte, doc *studentDoc) []byte {
	var flags byte
	var created, updated int64
	if doc.CreatedAt.IsZero() {
		flags |= recNoCreated
	} else {
		created = doc.CreatedAt.UnixNano()
	}
	if doc.UpdatedAt.IsZero() {
		flags |= recNoUpdated
	} else {
		updated = doc.UpdatedAt.UnixNano()
	}
	var texts [len(recordTexts)]string
	for i, f := range recordTexts {
		texts[i] = f.get(&doc.Student)
	}
	var nums [len(recordNums)]uint64
	for i, f := range recordNums {
		nums[i] = f.get(&doc.Student)
	}
	return appendFields(b, flags, created, updated, texts, nums, keysOf(doc), []byte(doc.Search))
}

// appendFields appends a record: flags; the lengths of the keys when the
// keys begin the search text; created_at (Unix nanoseconds) and
// updated_at (after created_at) unless zero; the text fields; the number
// fields; the keys when they are not in the search text.
func appendFields[T string | []byte](b []byte, flags byte, created, updated int64, texts [len(recordTexts)]T, nums [len(recordNums)]uint64, keys [numKeys]T, search []byte) []byte {
	inSearch := keysInSearch(keys, search)
	flags &^= recKeysInSearch
	if inSearch {
		flags |= recKeysInSearch
	}
	b = append(b, flags)
	if inSearch {
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
		}
	}
	if flags&recNoCreated != 0 {
		created = 0
	} else {
		b = binary.AppendVarint(b, created)
	}
	if flags&recNoUpdated == 0 {
		b = binary.AppendVarint(b, updated-created)
	}
	for _, t := range texts {
		b = appendText(b, t, search)
	}
	for _, n := range nums {
		b = binary.AppendUvarint(b, n)
	}
	if !inSearch {
		for _, k := range keys {
			b = appendString(b, k)
		}
	}
	return b
}

// appendText appends a text field of a record: 2·len+1 and its place
// in search when search holds its ASCII lower case (nearly every name,
// class, guardian and e-mail address: Fold lower-cases them), then twice
// the number of its capitals and their places, as differences; or, when
// search holds its digits (a phone number: searchExtra keeps its digits
// only), 2·len+1 and their place, then twice the number of its other
// bytes plus one, and each one's place (a difference) and the byte;
// otherwise (or when neither is shorter) 2·len and the text itself. So
// the schema 3 fields are not held twice, raw in the records and folded
// in the search text.
func appendText[T string | []byte](b []byte, t T, search []byte) []byte {
	if len(t) == 0 {
		return append(b, 0)
	}
	var scratch [128]byte
	lower := scratch[:0]
	capitals := 0
	for i := range len(t) {
		c := t[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
			capitals++
		}
		lower = append(lower, c)
	}
	var h [binary.MaxVarintLen64]byte
	stored := binary.PutUvarint(h[:], uint64(len(t))<<1) + len(t)
	if off := bytes.Index(search, lower); off >= 0 {
		start := len(b)
		b = binary.AppendUvarint(b, uint64(len(t))<<1|1)
		b = binary.AppendUvarint(b, uint64(off))
		b = binary.AppendUvarint(b, uint64(capitals)<<1)
		last := 0
		for i := range len(t) {
			if c := t[i]; 'A' <= c && c <= 'Z' {
				b = binary.AppendUvarint(b, uint64(i-last))
				last = i
			}
		}
		if len(b)-start < stored {
			return b
		}
		b = b[:start]
	}
	digits, others := scratch[:0], 0
	for i := range len(t) {
		if c := t[i]; '0' <= c && c <= '9' {
			digits = append(digits, c)
		} else {
			others++
		}
	}
	if off := bytes.Index(search, digits); len(digits) > 0 && off >= 0 {
		start := len(b)
		b = binary.AppendUvarint(b, uint64(len(t))<<1|1)
		b = binary.AppendUvarint(b, uint64(off))
		b = binary.AppendUvarint(b, uint64(others)<<1|1)
		last := 0
		for i := range len(t) {
			if c := t[i]; c < '0' || c > '9' {
				b = binary.AppendUvarint(b, uint64(i-last))
				b = append(b, c)
				last = i
			}
		}
		if len(b)-start < stored {
			return b
		}
		b = b[:start]
	}
	b = binary.AppendUvarint(b, uint64(len(t))<<1)
	return append(b, t...)
}

// studentView is one student's fields as slices of the snapshot's
// columns: valid until the snapshot changes; student copies them out.
type studentView struct {
	id               int64
	flags            byte
	created, updated int64 // Unix nanoseconds
	texts            [len(recordTexts)][]byte
	nums             [len(recordNums)]uint64
	keys             [numKeys][]byte
	search           []byte
	raw              []byte // its record
}

func (v *studentView) student() Student {
	st := Student{ID: v.id}
	if v.flags&recNoCreated == 0 {
		st.CreatedAt = time.Unix(0, v.created).UTC()
	}
	if v.flags&recNoUpdated == 0 {
		st.UpdatedAt = time.Unix(0, v.updated).UTC()
	}
	for i, f := range recordTexts {
		f.set(&st, string(v.texts[i]))
	}
	for i, f := range recordNums {
		f.set(&st, v.nums[i])
	}
	return st
}

func (v *studentView) doc() studentDoc {
	return studentDoc{Student: v.student(), RegNoKey: string(v.keys[ordRegNo]), FirstNameKey: string(v.keys[ordFirst]),
		SecondNameKey: string(v.keys[ordSecond]), Search: string(v.search)}
}

// readUvarint reads a number at b[off:]: the value and where it ends.
// Records are written by this process, so a bad one is a bug: it panics.
func readUvarint(b []byte, off int) (uint64, int) {
	if c := b[off]; c < 0x80 { // one byte: most lengths, places and differences
		return uint64(c), off + 1
	}
	v, n := binary.Uvarint(b[off:])
	if n <= 0 {
		panic("read model: a damaged record")
	}
	return v, off + n
}

func readVarint(b []byte, off int) (int64, int) {
	v, n := binary.Varint(b[off:])
	if n <= 0 {
		panic("read model: a damaged record")
	}
	return v, off + n
}

func readBytes(b []byte, off int) ([]byte, int) {
	n, off := readUvarint(b, off)
	return b[off : off+int(n)], off + int(n)
}

// search is the folded search text at pos.
func (sn *snapshot) search(pos int) []byte {
	if sn.sealed != nil {
		_, _, s := sn.sealedAt(pos)
		return s
	}
	end := len(sn.text)
	if pos+1 < len(sn.at) {
		end = int(sn.at[pos+1]) - 1
	}
	return sn.text[sn.at[pos]:end]
}

// view reads the student at pos.
func (sn *snapshot) view(pos int) studentView { return sn.parse(pos, allTexts, nil) }

// rawView is view without the text fields kept in the search text (nil
// in texts): for what needs only the record's end, keys or search text.
func (sn *snapshot) rawView(pos int) studentView { return sn.parse(pos, 0, nil) }

// allTexts asks parse for every text field.
const allTexts = 1<<len(recordTexts) - 1

// textInSearch is a text field a record keeps as a place in the search
// text (appendText): n bytes at off, with the k capitals whose places
// (uvarint differences) start at upper in recs; or, digits, its n-k
// digits at off and its k other bytes, each after its place, at upper.
type textInSearch struct {
	off, n, upper, k int
	digits           bool
}

// fillDigits writes to t the text d keeps as its digits in search and
// its other bytes in b.
func (d textInSearch) fillDigits(t, b, search []byte) {
	from, src, p, up := 0, d.off, 0, d.upper
	for range d.k {
		var delta uint64
		delta, up = readUvarint(b, up)
		p += int(delta)
		src += copy(t[from:p], search[src:src+p-from])
		t[p], from, up = b[up], p+1, up+1
	}
	copy(t[from:], search[src:src+len(t)-from])
}

// parse reads the student at pos, and of the text fields kept in the
// search text those in want (bit i: field i), written after buf[len(buf):]
// (one allocation for them all when buf has not the room).
func (sn *snapshot) parse(pos int, want uint32, buf []byte) studentView {
	var b, search []byte
	var off int
	if sn.sealed != nil {
		b, off, search = sn.sealedAt(pos)
	} else {
		b, off, search = sn.recs, int(sn.rec[pos]), sn.search(pos)
	}
	return sn.parseRec(pos, want, buf, b, off, search)
}

// parseRec is parse of the student at pos whose record begins at b[off:]
// and whose search text is search.
func (sn *snapshot) parseRec(pos int, want uint32, buf, b []byte, off int, search []byte) studentView {
	v := studentView{id: sn.ids[pos], search: search}
	start := off
	v.flags = b[off]
	off++
	var lens [numKeys]uint64
	if v.flags&recKeysInSearch != 0 {
		for i := range lens {
			lens[i], off = readUvarint(b, off)
		}
	}
	if v.flags&recNoCreated == 0 {
		v.created, off = readVarint(b, off)
	}
	if v.flags&recNoUpdated == 0 {
		var delta int64
		delta, off = readVarint(b, off)
		v.updated = v.created + delta
	}
	var lent [len(recordTexts)]textInSearch
	total := 0
	for i := range v.texts {
		var h uint64
		h, off = readUvarint(b, off)
		if h&1 == 0 {
			v.texts[i], off = b[off:off+int(h>>1)], off+int(h>>1)
			continue
		}
		if want&(1<<i) == 0 {
			_, off = readUvarint(b, off)
			var k uint64
			k, off = readUvarint(b, off)
			for range k >> 1 {
				_, off = readUvarint(b, off)
				off += int(k & 1) // the byte, when digits
			}
			continue
		}
		d := &lent[i]
		d.n = int(h >> 1)
		var x uint64
		x, off = readUvarint(b, off)
		d.off = int(x)
		k, upper := readUvarint(b, off)
		d.upper, d.k, d.digits = upper, int(k>>1), k&1 == 1
		inSearch := d.n
		if d.digits {
			inSearch = d.n - d.k
		}
		if x > uint64(len(v.search)) || k>>1 > uint64(d.n) || inSearch > len(v.search)-d.off {
			panic("read model: a damaged record") // before a buffer of its size is made (checkSealed)
		}
		off = upper
		for range d.k {
			_, off = readUvarint(b, off)
			if d.digits {
				off++
			}
		}
		total += d.n
	}
	if total > 0 {
		at := len(buf)
		if cap(buf)-len(buf) < total {
			buf = make([]byte, 0, total)
			at = 0
		}
		buf = buf[:at+total]
		for i, d := range lent {
			if d.n == 0 {
				continue
			}
			t := buf[at : at+d.n : at+d.n]
			if d.digits {
				d.fillDigits(t, b, v.search)
			} else {
				copy(t, v.search[d.off:d.off+d.n])
				p, up := 0, d.upper
				for range d.k {
					var delta uint64
					delta, up = readUvarint(b, up)
					p += int(delta)
					t[p] -= 'a' - 'A'
				}
			}
			v.texts[i] = t
			at += d.n
		}
	}
	for i := range v.nums {
		v.nums[i], off = readUvarint(b, off)
	}
	if v.flags&recKeysInSearch != 0 {
		at := 0
		for i := range lens {
			v.keys[i] = v.search[at : at+int(lens[i])]
			at += int(lens[i]) + 1
		}
	} else {
		for i := range v.keys {
			v.keys[i], off = readBytes(b, off)
		}
	}
	v.raw = b[start:off]
	return v
}

// key is the sort key of order o (< numKeys) of the student at pos,
// reading no more of its record than it needs; buf is room for it when
// it is not in the snapshot as it is (a sealed one's registration number).
func (sn *snapshot) key(o, pos int, buf []byte) []byte {
	if sn.sealed != nil && o == ordRegNo {
		return sn.sealed.regKey(pos, buf) // nothing decompressed
	}
	lens, text, ok := sn.keysAt(pos)
	if !ok {
		v := sn.rawView(pos)
		return v.keys[o]
	}
	at := o // the spaces before it
	for _, n := range lens[:o] {
		at += n
	}
	return text[at : at+lens[o]]
}

// keyRoom is the room kept on the stack for a key read (key): longer
// ones are allocated.
const keyRoom = 64

// comparePos orders the students at p and q in order o: by its key, then
// by ID.
func (sn *snapshot) comparePos(o int, p, q int32) int {
	if o < numKeys {
		var a, b [keyRoom]byte
		if c := bytes.Compare(sn.key(o, int(p), a[:0]), sn.key(o, int(q), b[:0])); c != 0 {
			return c
		}
	}
	return cmp.Compare(sn.ids[p], sn.ids[q])
}

// place is the pos of the i-th student in order o.
func (sn *snapshot) place(o, i int) int {
	if o == ordID {
		return i
	}
	return int(sn.posOf[o][i])
}

// placeOf is the place in order o of the student at pos: a binary search
// of the order by its keys (no inverse array: 1.2 MB at 100,000 students
// for a look-up that few requests make, a search with few matches).
func (sn *snapshot) placeOf(o, pos int) int {
	if o == ordID {
		return pos
	}
	i, found := slices.BinarySearchFunc(sn.posOf[o], int32(pos), func(p, t int32) int { return sn.comparePos(o, p, t) })
	if !found {
		panic("read model: a student missing from an order")
	}
	return i
}

// count is the number of students.
func (sn *snapshot) count() int { return len(sn.ids) }

// find returns the place of the student with ID id.
func (sn *snapshot) find(id int64) (int, bool) { return slices.BinarySearch(sn.ids, id) }

// doc returns the student with ID id.
func (sn *snapshot) doc(id int64) (studentDoc, bool) {
	pos, ok := sn.find(id)
	if !ok {
		return studentDoc{}, false
	}
	v := sn.view(pos)
	return v.doc(), true
}

// student returns the student at pos.
func (sn *snapshot) student(pos int) Student {
	v := sn.view(pos)
	return v.student()
}

// withKey returns the students whose registration number key is key
// (several when their numbers differ only in case: a migration's
// conflicts), from the order by registration number.
func (sn *snapshot) withKey(key string) []studentDoc {
	order := sn.posOf[ordRegNo]
	k := []byte(key)
	var buf [keyRoom]byte
	i, _ := slices.BinarySearchFunc(order, k, func(p int32, k []byte) int { return bytes.Compare(sn.key(ordRegNo, int(p), buf[:0]), k) })
	var docs []studentDoc
	for ; i < len(order) && bytes.Equal(sn.key(ordRegNo, int(order[i]), buf[:0]), k); i++ {
		v := sn.view(int(order[i]))
		docs = append(docs, v.doc())
	}
	return docs
}

// appendStudent adds doc after the last student (a greater ID), without
// its places in the other orders (sortOrders) or the index.
func (sn *snapshot) appendStudent(doc *studentDoc) {
	sn.unseal()
	sn.ids = append(sn.ids, doc.ID)
	sn.rec = append(sn.rec, uint32(len(sn.recs)))
	sn.recs = appendRecord(sn.recs, doc)
	sn.text = append(sn.text, '\n')
	sn.at = append(sn.at, int32(len(sn.text)))
	sn.text = append(sn.text, doc.Search...)
}

// appendFrom is appendStudent for the student at pos of another snapshot
// (its record and text copied as they are).
func (sn *snapshot) appendFrom(from *snapshot, pos int) {
	sn.unseal()
	v := from.rawView(pos)
	sn.ids = append(sn.ids, v.id)
	sn.rec = append(sn.rec, uint32(len(sn.recs)))
	sn.recs = append(sn.recs, v.raw...)
	sn.text = append(sn.text, '\n')
	sn.at = append(sn.at, int32(len(sn.text)))
	sn.text = append(sn.text, v.search...)
}

// sortOrders makes the other orders from scratch (in parallel).
func (sn *snapshot) sortOrders() {
	var wg sync.WaitGroup
	for o := range numKeys {
		wg.Go(func() {
			order := make([]int32, len(sn.ids))
			for i := range order {
				order[i] = int32(i)
			}
			slices.SortFunc(order, func(p, q int32) int { return sn.comparePos(o, p, q) })
			sn.posOf[o] = order
		})
	}
	wg.Wait()
}

// newColumns is a snapshot of students (any order, IDs distinct) with its
// columns and orders.
func newColumns(docs []*studentDoc, seq int64, now time.Time) *snapshot {
	docs = slices.Clone(docs)
	slices.SortFunc(docs, func(a, b *studentDoc) int { return cmp.Compare(a.ID, b.ID) })
	sn := &snapshot{seq: seq, checked: now, loadedAt: now}
	size := 0
	for _, doc := range docs {
		size += len(doc.Search) + 1
	}
	sn.ids, sn.rec, sn.at = make([]int64, 0, len(docs)), make([]uint32, 0, len(docs)), make([]int32, 0, len(docs))
	sn.text, sn.recs = make([]byte, 0, size), make([]byte, 0, size+16*len(docs))
	for _, doc := range docs {
		sn.appendStudent(doc)
	}
	sn.recs = fit(sn.recs)
	sn.sortOrders()
	return sn
}

// fit returns b, or a copy of it when more than an eighth of b's memory
// is unused capacity (the column lives as long as its snapshot).
func fit(b []byte) []byte {
	if cap(b)-len(b) > len(b)/8 {
		return bytes.Clone(b)
	}
	return b
}

// forget empties the cache of matches (the students changed).
func (sn *snapshot) forget() {
	sn.gen++
	sn.cmu.Lock()
	sn.matches, sn.filterCache = nil, nil
	sn.cmu.Unlock()
}

// put adds doc, or replaces the student with its ID.
func (sn *snapshot) put(doc *studentDoc) {
	sn.unseal()
	defer sn.changed()
	pos, found := sn.find(doc.ID)
	if found {
		sn.replace(pos, doc)
		return
	}
	n := len(sn.ids)
	sn.ids = slices.Insert(sn.ids, pos, doc.ID)
	sn.rec = slices.Insert(sn.rec, pos, uint32(len(sn.recs)))
	sn.recs = appendRecord(sn.recs, doc)
	start := len(sn.text) // where its '\n' goes
	if pos < n {
		start = int(sn.at[pos]) - 1
	}
	sn.text = slices.Insert(sn.text, start, append([]byte{'\n'}, doc.Search...)...)
	shift := int32(len(doc.Search) + 1)
	for k := pos; k < n; k++ {
		sn.at[k] += shift
	}
	sn.at = slices.Insert(sn.at, pos, int32(start+1))
	for o := range numKeys {
		order := sn.posOf[o]
		for i, p := range order {
			if p >= int32(pos) {
				order[i] = p + 1
			}
		}
		j, _ := slices.BinarySearchFunc(order, int32(pos), func(p, t int32) int { return sn.comparePos(o, p, t) })
		sn.posOf[o] = slices.Insert(order, j, int32(pos))
	}
}

// replace is put for a student already there (an update): its place is
// kept, so only its record, its search text and its places in the other
// orders change.
func (sn *snapshot) replace(pos int, doc *studentDoc) {
	var was [numKeys]int // its places, found by its old keys
	for o := range numKeys {
		was[o] = sn.placeOf(o, pos)
	}
	old := sn.rawView(pos)
	sn.dead += len(old.raw)
	sn.rec[pos] = uint32(len(sn.recs))
	sn.recs = appendRecord(sn.recs, doc)
	start, end := int(sn.at[pos]), int(sn.at[pos])+len(old.search)
	if delta := len(doc.Search) - (end - start); delta == 0 {
		copy(sn.text[start:end], doc.Search) // readers are locked out
	} else {
		text := make([]byte, 0, len(sn.text)+delta)
		sn.text = append(append(append(text, sn.text[:start]...), doc.Search...), sn.text[end:]...)
		for k := pos + 1; k < len(sn.at); k++ {
			sn.at[k] += int32(delta)
		}
	}
	for o := range numKeys {
		i := was[o]
		order := slices.Delete(sn.posOf[o], i, i+1)
		j, _ := slices.BinarySearchFunc(order, int32(pos), func(p, t int32) int { return sn.comparePos(o, p, t) })
		sn.posOf[o] = slices.Insert(order, j, int32(pos))
	}
}

// remove deletes the student with ID id, if there.
func (sn *snapshot) remove(id int64) {
	pos, found := sn.find(id)
	if !found {
		return
	}
	sn.unseal()
	defer sn.changed()
	var was [numKeys]int
	for o := range numKeys {
		was[o] = sn.placeOf(o, pos)
	}
	v := sn.rawView(pos)
	sn.dead += len(v.raw)
	start, end := int(sn.at[pos])-1, int(sn.at[pos])+len(v.search)
	sn.text = slices.Delete(sn.text, start, end)
	sn.at = slices.Delete(sn.at, pos, pos+1)
	for k := pos; k < len(sn.at); k++ {
		sn.at[k] -= int32(end - start)
	}
	sn.ids = slices.Delete(sn.ids, pos, pos+1)
	sn.rec = slices.Delete(sn.rec, pos, pos+1)
	for o := range numKeys {
		order := slices.Delete(sn.posOf[o], was[o], was[o]+1)
		for k, p := range order {
			if p > int32(pos) {
				order[k] = p - 1
			}
		}
		sn.posOf[o] = order
	}
}

// changed follows every change: the matches are forgotten, the records
// compacted when half of them is garbage, the index rebuilt when what
// was added since it was built weighs as much as a quarter of it.
func (sn *snapshot) changed() {
	sn.forget()
	if sn.dead > 4096 && sn.dead > len(sn.recs)/2 {
		recs := make([]byte, 0, len(sn.recs)-sn.dead)
		for pos := range sn.ids {
			v := sn.rawView(pos)
			from := len(recs)
			recs = append(recs, v.raw...)
			sn.rec[pos] = uint32(from)
		}
		sn.recs, sn.dead = recs, 0
	}
}

// putMany is put for many students: past a few hundred, making the
// columns again (merging by ID) and sorting is cheaper than inserting
// one by one.
func (sn *snapshot) putMany(docs []*studentDoc) {
	if len(docs) < 500 {
		for _, doc := range docs {
			sn.put(doc)
		}
		return
	}
	sn.unseal()
	docs = slices.Clone(docs)
	slices.SortStableFunc(docs, func(a, b *studentDoc) int { return cmp.Compare(a.ID, b.ID) })
	fresh := &snapshot{}
	n := len(sn.ids) + len(docs)
	fresh.ids, fresh.rec, fresh.at = make([]int64, 0, n), make([]uint32, 0, n), make([]int32, 0, n)
	fresh.recs = make([]byte, 0, len(sn.recs)-sn.dead+len(docs)*48)
	fresh.text = make([]byte, 0, len(sn.text)+len(docs)*32)
	i := 0
	for j, doc := range docs {
		if j+1 < len(docs) && docs[j+1].ID == doc.ID {
			continue // the last of the same ID wins
		}
		for ; i < len(sn.ids) && sn.ids[i] < doc.ID; i++ {
			fresh.appendFrom(sn, i)
		}
		if i < len(sn.ids) && sn.ids[i] == doc.ID {
			i++
		}
		fresh.appendStudent(doc)
	}
	for ; i < len(sn.ids); i++ {
		fresh.appendFrom(sn, i)
	}
	fresh.sortOrders()
	fresh.recs, fresh.text = fit(fresh.recs), fit(fresh.text)
	sn.ids, sn.rec, sn.recs, sn.dead, sn.text, sn.at = fresh.ids, fresh.rec, fresh.recs, 0, fresh.text, fresh.at
	sn.posOf = fresh.posOf
	sn.forget()
}
