package store

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// indexQueries are searches that exercise matching: accents, several
// words, registration numbers, words shorter than a trigram (alone and
// beside long ones), words whose trigrams occur only apart, no match.
var indexQueries = []string{
	"amina", "amin", "zoe", "zoë", "ZOE", "nunez", "Ñúñez", "amina otieno", "otieno amina", "kofi mensah",
	"c-3", "C-3", "a-1", "u/2026/000042", "u/2026/00004", "e", "zo", "z z", "a mensah", "e emile",
	"aminaodh", "minami", "otieno amina zulu", "nobody", "nobody here", "é", "ø", "ßa", "od am",
}

func mkDoc(id int64, reg, first, second string) *studentDoc {
	doc := newStudentDoc(Student{ID: id, RegistrationNo: reg, FirstName: first, SecondName: second})
	return &doc
}

func indexDocs() []*studentDoc {
	docs := []*studentDoc{mkDoc(1, "C-3", "Amina", "Odhiambo"), mkDoc(2, "A-1", "Kofi", "Mensah"), mkDoc(3, "B-2", "Zoë", "Zulu"),
		mkDoc(4, "E-5", "Zanele", "Amin"), mkDoc(5, "D-4", "Kofi", "Boateng"), mkDoc(6, "F-6", "Zoë", "Ñúñez"),
		mkDoc(7, "G-7", "Émile", "Otieno"), mkDoc(8, "H-8", "Mina", "Ami"), mkDoc(9, "I-9", "Ø", "Straße"), mkDoc(10, "J-10", "Z", "Z")}
	for i := range 40 {
		docs = append(docs, mkDoc(int64(11+i), fmt.Sprintf("U/2026/%06d", 40+i), []string{"Amina", "Kofi", "Zoë", "Émile"}[i%4],
			[]string{"Otieno", "Mensah", "Ñúñez"}[i%3]))
	}
	return docs
}

// checkIndex fails unless every query's matches are those of a check of
// every student's search text, one by one, and every student matches its
// own search text's words.
func checkIndex(t *testing.T, step string, sn *snapshot) {
	t.Helper()
	for _, q := range indexQueries {
		words := searchWords(q)
		want := make([]uint64, (len(sn.ids)+63)/64)
		for pos := range sn.ids {
			if matchesAll(sn.search(pos), wordBytes(words)) {
				want[pos/64] |= 1 << (pos % 64)
			}
		}
		if got := sn.matching(words); !slices.Equal(got, want) {
			t.Errorf("%s: %q: matching %b, one by one %b", step, q, got, want)
		}
	}
	for pos, id := range sn.ids {
		words := searchWords(string(sn.search(pos)))
		if bits := sn.matching(words); bits[pos/64]&(1<<(pos%64)) == 0 {
			t.Errorf("%s: student %d does not match its own words %q", step, id, words)
		}
	}
	if !slices.IsSorted(sn.ids) {
		t.Errorf("%s: ids %v, not ascending", step, sn.ids)
	}
}

// Matching gives exactly the students whose text holds every word, built
// and then kept up to date by updates (same length, other length, new registration
// number), creates (last and in the middle), deletes and bulk puts.
func TestMatchingMatchesOneByOne(t *testing.T) {
	t.Parallel()
	sn := buildSnapshot(indexDocs(), 0, time.Now())
	checkIndex(t, "built", sn)
	for _, step := range []struct {
		name  string
		apply func()
	}{
		{"update, same length", func() { sn.put(mkDoc(1, "C-3", "Amine", "Odhiambo")) }},
		{"update, other text", func() { sn.put(mkDoc(2, "A-1", "Zoë Wanjiru", "Ñúñez")) }},
		{"update, new registration number", func() { sn.put(mkDoc(3, "Z-99", "Amina", "Otieno")) }},
		{"update to short names", func() { sn.put(mkDoc(4, "E", "a", "z")) }},
		{"create, last", func() { sn.put(mkDoc(100, "K-100", "Minami", "Aminaodh")) }},
		{"create, middle", func() { sn.put(mkDoc(55, "K-55", "Kofi", "Amina")) }},
		{"delete", func() { sn.remove(7) }},
		{"delete, last", func() { sn.remove(100) }},
		{"delete, missing", func() { sn.remove(12345) }},
		{"bulk put", func() {
			var docs []*studentDoc
			for i := range 600 {
				docs = append(docs, mkDoc(int64(1000+i), fmt.Sprintf("V-%d", i), "Nia", fmt.Sprintf("Kamau%d", i)))
			}
			docs = append(docs, mkDoc(5, "D-4", "Kofi", "Otieno")) // an update among them
			sn.putMany(docs)
		}},
		{"after the bulk put, update", func() { sn.put(mkDoc(1001, "V-1", "Zoë", "Kamau1")) }},
		{"after the bulk put, delete", func() { sn.remove(1002) }},
	} {
		step.apply()
		checkIndex(t, step.name, sn)
		for _, per := range []int{1, 3, 16, textBlock} { // sealed: the same matches
			sn.sealBy(per)
			checkIndex(t, fmt.Sprintf("%s, sealed by %d", step.name, per), sn)
			sn.unseal()
		}
		if step.name == "create, middle" {
			sn.sealBy(4) // the next change starts from a sealed model
		}
	}
}

// Two schools' indexes are their own, even for the same student IDs (each
// database numbers its students from 1): a search in one school never
// finds the other's students, before or after writes to either.
func TestSearchIndexCrossTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a := newStore(t, Options{ReadModel: ReadModelOn})
	b := newStore(t, Options{ReadModel: ReadModelOn})
	sa := mustCreate(t, a, "A-1", "Amina", "Otieno")
	mustCreate(t, b, "B-1", "Kofi", "Mensah")
	search := func(s *Store, q string) []string {
		t.Helper()
		pg, err := s.ListStudents(ctx, ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return regNos(pg)
	}
	check := func(step string) {
		t.Helper()
		for _, q := range []string{"amina", "otieno", "amina otieno", "a-1", "zoe", "nunez", "kofi", "mensah", "b-1", "a", "1"} {
			for _, got := range search(a, q) {
				if got[0] != 'A' {
					t.Errorf("%s: school A's search %q found %s", step, q, got)
				}
			}
			for _, got := range search(b, q) {
				if got[0] != 'B' {
					t.Errorf("%s: school B's search %q found %s", step, q, got)
				}
			}
		}
	}
	check("loaded")
	if got := search(a, "amina"); !slices.Equal(got, []string{"A-1"}) {
		t.Fatalf("school A's own search: %v", got)
	}
	if _, err := a.UpdateStudent(ctx, sa.ID, StudentInput{RegistrationNo: "A-1", FirstName: "Zoë", SecondName: "Ñúñez"}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, a, "A-2", "Kofi", "Mensah")
	mustCreate(t, b, "B-2", "Amina", "Zulu")
	check("after writes")
	if got := search(a, "nunez zoe"); !slices.Equal(got, []string{"A-1"}) {
		t.Fatalf("school A's search after the update: %v", got)
	}
	if got := search(b, "kofi"); !slices.Equal(got, []string{"B-1"}) {
		t.Fatalf("school B's search: %v", got)
	}
}

// A search's page taken by sorting the matches' places (few matches, deep
// pages) is the page taken by walking the order, in every order, both
// ways, on every page, before and after writes.
func TestPageByRanksMatchesWalk(t *testing.T) {
	t.Parallel()
	sn := buildSnapshot(indexDocs(), 0, time.Now())
	check := func(step string) {
		t.Helper()
		for _, q := range indexQueries {
			words := searchWords(q)
			bits, total := sn.match(words)
			if total == 0 {
				continue
			}
			for _, sort := range []string{"registration_no", "-registration_no", "first_name", "-first_name", "second_name", "-second_name", "id", "-id"} {
				ord, desc := modelOrder(sort)
				for _, perPage := range []int{1, 3, 50} {
					for skip := 0; skip <= int(total); skip += perPage {
						walk := sn.pageByWalk(bits, ord, desc, skip, perPage)
						ranks := sn.pageByRanks(bits, total, ord, desc, skip, perPage)
						if !slices.Equal(regNos(Page{Students: walk}), regNos(Page{Students: ranks})) {
							t.Errorf("%s: %q %s skip %d: by ranks %v, by walk %v", step, q, sort, skip,
								regNos(Page{Students: ranks}), regNos(Page{Students: walk}))
						}
					}
				}
			}
		}
	}
	check("built")
	sn.put(mkDoc(3, "A-0", "Aaron", "Zulu")) // moves in every order
	sn.put(mkDoc(1, "C-3", "Amina Wanjiru", "Odhiambo"))
	sn.put(mkDoc(77, "B-77", "Kofi", "Amina"))
	sn.remove(5)
	check("after writes")
}

// IDs beyond int32 are found as the others, loaded or created later.
func TestSearchBigIDs(t *testing.T) {
	t.Parallel()
	small := []*studentDoc{mkDoc(1, "A-1", "Amina", "Otieno"), mkDoc(2, "A-2", "Kofi", "Amina")}
	big := mkDoc(math.MaxInt32+7, "A-3", "Amina", "Zulu")
	for _, tc := range []struct {
		name string
		sn   func() *snapshot
	}{
		{"loaded with a big ID", func() *snapshot {
			return buildSnapshot(append(slices.Clone(small), big), 1, time.Now())
		}},
		{"a big ID created later", func() *snapshot {
			sn := buildSnapshot(slices.Clone(small), 1, time.Now())
			b := *big
			sn.put(&b)
			return sn
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := tc.sn()
			if pg := sn.page(ListOptions{Query: "amina"}, 50); pg.Total != 3 {
				t.Fatalf("amina: %d students, want 3", pg.Total)
			}
			if pg := sn.page(ListOptions{Query: "zulu"}, 50); pg.Total != 1 || pg.Students[0].ID != big.ID {
				t.Fatalf("zulu: %+v", pg.Students)
			}
		})
	}
}
