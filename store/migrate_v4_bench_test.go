package store

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/campus-saas/campus/internal/mongotest"
)

// BenchmarkMigrateStudentIDs prices the schema 4 copy and swap of a
// school of 100,000 schema 3 students (int64 _ids, every record field
// of an import set): Migrate from version 3, indexes included (ns/op),
// and its copy and swap alone (copy+swap-s).
//
//	go test ./store -run '^$' -bench MigrateStudentIDs -benchtime 1x -v
func BenchmarkMigrateStudentIDs(b *testing.B) {
	b.StopTimer() // only Migrate is timed
	for range b.N {
		s := New(mongotest.Database(b), Options{QueryTimeout: 10 * time.Minute, BulkTimeout: 30 * time.Minute})
		ctx := b.Context()
		if _, _, err := s.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		seedSchema3(b, s, 100_000)
		b.StartTimer()
		start := time.Now()
		if err := s.migrateStudentIDs(ctx); err != nil { // the copy and swap alone
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "copy+swap-s")
		if from, to, err := s.Migrate(ctx); err != nil || from != 3 || to != SchemaVersion {
			b.Fatal(from, to, err)
		}
		b.StopTimer()
		if n, err := s.col(colStudents).CountDocuments(ctx, d("_id", d("$type", "string"))); err != nil || n != 100_000 {
			b.Fatal(n, err)
		}
	}
}

// seedSchema3 writes n students as schema 3 stored them (int64 _ids,
// every record field of an import set) and sets the version to 3.
func seedSchema3(tb testing.TB, s *Store, n int) {
	const batch = 5000
	ctx := tb.Context()
	now := s.now()
	for start := 0; start < n; start += batch {
		docs := make([]any, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("V-%06d", i), FirstName: "Amina", SecondName: "Kamau",
				Class: "Form 2B", GuardianName: "Mama Amina", GuardianPhone: "+254700000000", Status: StatusEnrolled,
				EnrolledOn: "2024-01-08", CreatedAt: now, UpdatedAt: now}
			// studentDocFields has no BSON methods: the int64 _id of schema 3.
			raw, err := bson.Marshal(studentDocFields(newStudentDoc(st)))
			if err != nil {
				tb.Fatal(err)
			}
			docs = append(docs, bson.Raw(raw))
		}
		if _, err := s.col(colStudents).InsertMany(ctx, docs); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := s.col(colMeta).UpdateOne(ctx, d("_id", schemaDocID), d("$set", d("version", 3))); err != nil {
		tb.Fatal(err)
	}
}
