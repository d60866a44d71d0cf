package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSavedModel measures what a starting process spends on the
// saved read model of 100,000 students (every field filled), beside the
// database reads (no database here), and what sealing and unsealing it
// cost: go test ./store -run '^$' -bench SavedModel -benchmem -v.
func BenchmarkSavedModel(b *testing.B) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("NBI-%06d", i),
			FirstName: fmt.Sprintf("Amina%d", i%97), SecondName: "Kamau", CreatedAt: time.Now(), UpdatedAt: time.Now()}
		benchRecord(&st, i) // every field filled
		doc := newStudentDoc(st)
		docs[i] = &doc
	}
	raw, sn := buildSnapshot(docs, 7, time.Now()), buildSnapshot(docs, 7, time.Now())
	unsealed := sn.bytes()
	sn.seal()
	payload := encodeSnapshot(sn, "tenant")
	st := sn.sealed
	b.Logf("payload %d bytes; model %d unsealed, %d sealed: blocks %d, registration number keys %d + %d, ids %d, orders %d, dictionaries %d",
		len(payload), unsealed, sn.bytes(), len(st.z)+4*len(st.zat), len(st.regs), 4*len(st.regAt), 8*len(sn.ids), 4*3*len(sn.ids), st.dictSize)
	// A change of a sealed model unseals it, and it is sealed again after
	// (modeltext.go): what a change costs more than before.
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			raw.sealText(textBlock)
		}
	})
	b.Run("unseal", func(b *testing.B) {
		for b.Loop() {
			sn.unseal()
			b.StopTimer()
			sn.seal()
			b.StartTimer()
		}
	})
	// An unremembered search of the sealed model (what a woken school's
	// first search costs).
	b.Run("search", func(b *testing.B) {
		for b.Loop() {
			sn.matching([]string{"amina3", "kamau"})
		}
	})
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			encodeSnapshot(sn, "tenant")
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeSnapshot(payload, "tenant", 7, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
