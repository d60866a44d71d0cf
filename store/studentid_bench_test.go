package store

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkStudentDocCodec prices studentDoc's BSON methods (string _id,
// studentid.go) against the struct codec alone on the int64 _id of
// schema 3, per document of a full record: the read model's load from
// the collection decodes 100,000 of these, an import encodes them.
//
//	go test ./store -run '^$' -bench StudentDocCodec -benchmem
func BenchmarkStudentDocCodec(b *testing.B) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	doc := newStudentDoc(Student{ID: 98765, RegistrationNo: "V-098765", FirstName: "Amina", SecondName: "Kamau",
		Class: "Form 2B", GuardianName: "Mama Amina", GuardianPhone: "+254700000000", GuardianEmail: "mama@example.org",
		Status: StatusEnrolled, EnrolledOn: "2024-01-08", Notes: "Asthma; inhaler in the office", CreatedAt: now, UpdatedAt: now})
	schema4, err := bson.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	schema3, err := bson.Marshal(studentDocFields(doc))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode/schema4-methods", func(b *testing.B) {
		for b.Loop() {
			var d studentDoc
			if err := bson.Unmarshal(schema4, &d); err != nil || d.ID != 98765 {
				b.Fatal(d.ID, err)
			}
		}
	})
	b.Run("decode/schema4-wire", func(b *testing.B) {
		for b.Loop() {
			var w studentDocBSON
			if err := bson.Unmarshal(schema4, &w); err != nil || w.Key != 98765 {
				b.Fatal(w.Key, err)
			}
		}
	})
	b.Run("decode/schema3-struct", func(b *testing.B) {
		for b.Loop() {
			var d studentDocFields
			if err := bson.Unmarshal(schema3, &d); err != nil || d.ID != 98765 {
				b.Fatal(d.ID, err)
			}
		}
	})
	b.Run("encode/schema4-methods", func(b *testing.B) {
		for b.Loop() {
			if _, err := bson.Marshal(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/schema3-struct", func(b *testing.B) {
		for b.Loop() {
			if _, err := bson.Marshal(studentDocFields(doc)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
