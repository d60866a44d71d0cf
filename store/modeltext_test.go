package store

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// A sealed model (modeltext.go) answers every read as the same model
// unsealed: one student, a registration number's look-up, lists in every
// order with searches, filters and the public register's names-only
// search, the filters' counts, and its saved copy is the same bytes;
// whatever the block size (one student a block, blocks cut mid-school,
// one block for all) and the students (names only, every field, keys that
// are not in the search text, empty and non-ASCII fields).
func TestSealedModelAnswersAsUnsealed(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	names := func(n int) []*studentDoc {
		var docs []*studentDoc
		for i := range n {
			docs = append(docs, mkDoc(int64(3*i+1), fmt.Sprintf("U/2026/%06d", i), []string{"Amina", "Zoë", "Émile", "Li", ""}[i%5],
				[]string{"Otieno", "Ñúñez", "王", "O'Neil"}[i%4]))
		}
		return docs
	}
	records := func(n int) []*studentDoc {
		var docs []*studentDoc
		for i := range n {
			st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("R-%d", i), FirstName: "Nia", SecondName: fmt.Sprintf("Kamau%d", i%7),
				CreatedAt: at.Add(time.Duration(i) * time.Millisecond), UpdatedAt: at.Add(time.Hour)}
			benchRecord(&st, i)
			doc := newStudentDoc(st)
			if i%9 == 0 { // keys that are not the search text's parts
				doc.RegNoKey += "x"
			}
			docs = append(docs, &doc)
		}
		return docs
	}
	queries := []ListOptions{
		{}, {Sort: "-first_name", Page: 3}, {Sort: "second_name"}, {Sort: "-id", Page: 2},
		{Query: "amina"}, {Query: "zoe nunez", Sort: "first_name"}, {Query: "u/2026/00001"}, {Query: "o'neil", Sort: "-second_name"},
		{Query: "kamau3", Sort: "first_name", Page: 2}, {Query: "example.org"}, {Query: "nobody"}, {Query: "r-1", Sort: "-registration_no"},
		{Query: "nia", NamesOnly: true}, {Query: "example", NamesOnly: true}, {Class: "Form 2B"}, {Status: StatusEnrolled, Query: "nia"},
		{EnrolledYear: 2021, Sort: "second_name"},
	}
	for _, c := range []struct {
		name string
		docs []*studentDoc
		per  []int
	}{
		{"one student", names(1), []int{1, textBlock}},
		{"names only", names(40), []int{1, 3, 16, textBlock}},
		{"every field", records(300), []int{1, 7, 64, textBlock}},
		{"big", records(1200), []int{textBlock}},
		{"with dictionaries", records(4000), []int{textBlock, 256}}, // texts and records past dictFrom
	} {
		for _, per := range c.per {
			t.Run(fmt.Sprintf("%s, %d a block", c.name, per), func(t *testing.T) {
				t.Parallel()
				raw, sealed := buildSnapshot(c.docs, 5, at), buildSnapshot(c.docs, 5, at)
				sealed.sealBy(per)
				if sealed.sealed == nil || sealed.text != nil || sealed.at != nil || sealed.recs != nil {
					t.Fatalf("not sealed: %d bytes of texts, %d of records", len(sealed.text), len(sealed.recs))
				}
				if dicts := sealed.sealed.tdict != nil && sealed.sealed.rdict != nil; dicts != (len(c.docs) >= 4000) {
					t.Errorf("dictionaries %v for %d students", dicts, len(c.docs))
				}
				if sealed.bytes() >= raw.bytes() && per >= 64 && len(c.docs) > 100 { // (tiny blocks do not compress)
					t.Errorf("sealed %d bytes, unsealed %d", sealed.bytes(), raw.bytes())
				}
				// Saved and loaded again (modelsnap.go): the sealed form as
				// it is, blocks of per students.
				loaded, err := decodeSnapshot(encodeSnapshot(sealed, "tenant"), "tenant", 5, at)
				if err != nil {
					t.Fatalf("load the saved copy: %v", err)
				}
				if loaded.sealed.per != per || loaded.bytes() != sealed.bytes() {
					t.Errorf("loaded: %d a block, %d bytes; saved %d, %d", loaded.sealed.per, loaded.bytes(), per, sealed.bytes())
				}
				for _, sealed := range []*snapshot{sealed, loaded} {
					for _, doc := range c.docs {
						g, gok := sealed.doc(doc.ID)
						w, wok := raw.doc(doc.ID)
						if g != w || !gok || !wok {
							t.Errorf("student %d: %+v, want %+v", doc.ID, g, w)
						}
						if g, w := sealed.withKey(doc.RegNoKey), raw.withKey(doc.RegNoKey); !slices.Equal(g, w) {
							t.Errorf("key %q: %+v, want %+v", doc.RegNoKey, g, w)
						}
					}
					for _, o := range queries {
						if g, w := sealed.page(o, 7), raw.page(o, 7); !reflect.DeepEqual(g, w) {
							t.Errorf("%+v: %d %v, want %d %v", o, g.Total, regNos(g), w.Total, regNos(w))
						}
						if g, w := sealed.facets(o), raw.facets(o); !reflect.DeepEqual(g, w) {
							t.Errorf("%+v: facets %+v, want %+v", o, g, w)
						}
					}
				}
				if g, w := encodeSnapshot(sealed, "tenant"), encodeSnapshot(raw, "tenant"); per == textBlock && !bytes.Equal(g, w) {
					t.Errorf("saved copy of %d bytes, unsealed %d", len(g), len(w))
				}
				sameSnapshot(t, "loaded", loaded, raw)
				sealed.unseal()
				sameSnapshot(t, "unsealed again", sealed, raw)
			})
		}
	}
}
