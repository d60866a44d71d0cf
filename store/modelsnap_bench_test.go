package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSavedModel measures what a starting process spends on the
// saved read model of 100,000 students, beside the database reads (no
// database here): go test ./store -run '^$' -bench SavedModel -benchmem.
func BenchmarkSavedModel(b *testing.B) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("NBI-%06d", i),
			FirstName: fmt.Sprintf("Amina%d", i%97), SecondName: "Kamau", CreatedAt: time.Now(), UpdatedAt: time.Now()})
		docs[i] = &doc
	}
	sn := buildSnapshot(docs, 7, time.Now())
	sn.seal()
	raw := encodeSnapshot(sn, "tenant")
	b.Logf("payload %d bytes, model %d", len(raw), sn.bytes())
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			encodeSnapshot(sn, "tenant")
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeSnapshot(raw, "tenant", 7, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
