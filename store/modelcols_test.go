package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// orderDocs is order o of sn, as whole students.
func orderDocs(sn *snapshot, o int) []studentDoc {
	docs := make([]studentDoc, sn.count())
	for i := range docs {
		v := sn.view(sn.place(o, i))
		docs[i] = v.doc()
	}
	return docs
}

// sameSnapshot fails unless got holds what want holds: the students with
// every field, in every order, and the search texts where they belong (a
// sealed got is read sealed, then unsealed to compare its texts, and
// sealed again).
func sameSnapshot(t *testing.T, step string, got, want *snapshot) {
	t.Helper()
	if !slices.Equal(got.ids, want.ids) {
		t.Fatalf("%s: ids %v, want %v", step, got.ids, want.ids)
	}
	for o := range numOrders {
		if !slices.Equal(got.posOf[o], want.posOf[o]) {
			t.Errorf("%s: order %d: posOf %v, want %v", step, o, got.posOf[o], want.posOf[o])
		}
		if g, w := orderDocs(got, o), orderDocs(want, o); !slices.Equal(g, w) {
			t.Errorf("%s: order %d:\n%+v\nwant\n%+v", step, o, g, w)
		}
	}
	if st := got.sealed; st != nil {
		got.unseal()
		defer got.sealBy(st.per)
	}
	if string(got.text) != string(want.text) || !slices.Equal(got.at, want.at) {
		t.Fatalf("%s: text %q at %v, want %q at %v", step, got.text, got.at, want.text, want.at)
	}
}

// unsealedText is sn's search texts as one arena, sealed or not.
func unsealedText(sn *snapshot) []byte {
	if sn.sealed == nil {
		return sn.text
	}
	var text []byte
	for b := range sn.sealed.blocks() {
		text = append(text, sn.sealed.decode(2*b, nil)...)
	}
	return text
}

// The columns after any sequence of writes (creates anywhere, updates of
// every field, deletes, bulk puts, enough of them to compact the records
// and rebuild the index), sealed between them or not (modeltext.go),
// hold what a fresh build of the same students holds, and answer every
// look-up, list and search as it does.
func TestColumnsMatchRebuild(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(20, 20))
	first := []string{"Amina", "Kofi", "Zoë", "Émile", "ZOË", "Li", "Tab\there", "", "Ama"}
	second := []string{"Otieno", "Mensah", "Ñúñez", "王", "O'Neil", "Straße", "Ø", "Z"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	mk := func(id int64) *studentDoc {
		st := Student{ID: id, RegistrationNo: fmt.Sprintf("%c-%d", "ABCabc"[r.IntN(6)], r.IntN(500)),
			FirstName: first[r.IntN(len(first))], SecondName: second[r.IntN(len(second))]}
		if r.IntN(10) > 0 { // some have no times (raw documents)
			st.CreatedAt = at.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
			st.UpdatedAt = st.CreatedAt.Add(time.Duration(r.IntN(3)) * time.Hour)
		}
		if r.IntN(2) == 0 { // a schema 3 record: the search text goes on after the keys
			benchRecord(&st, r.IntN(1000))
			st.Class = []string{"", "Form 2B", "Ñ 1", "Tab\tclass"}[r.IntN(4)]
		}
		doc := newStudentDoc(st)
		if r.IntN(20) == 0 { // keys that are not the search text's parts (a migration's leftovers)
			doc.RegNoKey = doc.RegNoKey + "x"
		}
		return &doc
	}
	want := map[int64]*studentDoc{}
	var docs []*studentDoc
	for id := int64(1); id <= 300; id += int64(1 + r.IntN(3)) {
		docs = append(docs, mk(id))
		want[id] = docs[len(docs)-1]
	}
	sn := buildSnapshot(docs, 0, at)
	for step := range 3000 {
		switch k := r.IntN(100); {
		case k < 45: // update
			id := int64(1 + r.IntN(300))
			if _, ok := want[id]; ok {
				doc := mk(id)
				sn.put(doc)
				want[id] = doc
			}
		case k < 75: // create, anywhere
			doc := mk(int64(1 + r.IntN(400)))
			sn.put(doc)
			want[doc.ID] = doc
		case k < 98:
			id := int64(1 + r.IntN(400))
			sn.remove(id)
			delete(want, id)
		default:
			var many []*studentDoc
			for range 500 + r.IntN(100) {
				doc := mk(int64(1 + r.IntN(1000)))
				many = append(many, doc)
				want[doc.ID] = doc // the last of an ID wins
			}
			sn.putMany(many)
		}
		if r.IntN(10) == 0 { // sealed, in blocks of 1 to 9 students: the next change unseals it
			sn.sealBy(1 + r.IntN(9))
		}
		if step%300 != 299 {
			continue
		}
		if step%600 == 299 { // every other check reads it sealed
			sn.sealBy(1 + r.IntN(9))
		}
		fresh := buildSnapshot(slices.Collect(maps.Values(want)), 0, at)
		name := fmt.Sprintf("step %d", step)
		sameSnapshot(t, name, sn, fresh)
		for _, id := range []int64{1, 2, 150, 399, 1000, 5000} {
			g, gok := sn.doc(id)
			w, wok := fresh.doc(id)
			if g != w || gok != wok {
				t.Errorf("%s: student %d: %+v %v, want %+v %v", name, id, g, gok, w, wok)
			}
		}
		for _, key := range []string{"a-1", "b-20", "c-499", "a-7x", "nobody"} {
			if g, w := sn.withKey(key), fresh.withKey(key); !slices.Equal(g, w) {
				t.Errorf("%s: key %q: %+v, want %+v", name, key, g, w)
			}
		}
		for _, q := range append(slices.Clone(indexQueries), "straße", "王", "o'neil", "tab") {
			for _, sort := range []string{"", "-first_name", "second_name", "-id"} {
				o := ListOptions{Query: q, Sort: sort, Page: 2}
				g, w := sn.page(o, 7), fresh.page(o, 7)
				if g.Total != w.Total || !slices.Equal(g.Students, w.Students) {
					t.Errorf("%s: %+v: %d %v, want %d %v", name, o, g.Total, regNos(g), w.Total, regNos(w))
				}
			}
		}
		if sn.dead > len(sn.recs)/2+4096 {
			t.Errorf("%s: %d bytes of %d records are garbage", name, sn.dead, len(sn.recs))
		}
	}
}

// A text field kept as its place in the search text (appendText) reads
// back exactly, sealed or not: names with capitals, and phone numbers
// kept as their digits plus their other bytes, whatever those are.
func TestRecordTextsKeptInSearch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		phone, notes string
		inSearch     bool // the phone kept as a place in the search text
	}{
		{"+254 712 345 678", "", true},
		{"+254 (712) 345-678", "Room 12, block 3", true},
		{"0712345678", "", true},                         // all digits: as its lower case
		{"+1 555 0100 ext. 9", "Call 0100 first", false}, // as many other bytes as digits: not shorter
		{"07 12 34 56 78", "12 34", true},
		{"+44 20 7946 0958", "Ünïcode 20 79 ✓", true},
		{"", "0712", false},
	} {
		t.Run(c.phone, func(t *testing.T) {
			t.Parallel()
			want := Student{ID: 7, RegistrationNo: "NBI-1", FirstName: "Amina", SecondName: "McDonald", GuardianPhone: c.phone, Notes: c.notes, Status: StatusEnrolled}
			doc := newStudentDoc(want)
			sn := buildSnapshot([]*studentDoc{&doc}, 1, time.Now())
			raw := appendText(nil, c.phone, []byte(doc.Search))
			if kept := len(raw) < len(c.phone)+1; kept != c.inSearch {
				t.Errorf("phone kept in the search text = %v (%d bytes), want %v", kept, len(raw), c.inSearch)
			}
			for _, sealed := range []bool{false, true} {
				if sealed {
					sn.sealBy(1)
				}
				if got := sn.student(0); got != want {
					t.Errorf("sealed %v: %+v, want %+v", sealed, got, want)
				}
			}
		})
	}
}
