package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/mongotest"
)

// BenchmarkEditNewest prices the hand edit and the hand delete of one
// student of a 100,000-student school, the oldest and the newest (the
// admin's student form): on the embedded FerretDB v1 a write by an int64
// `_id` reads the table until it meets the row, a write by a string `_id`
// (schema 4) is found through the index.
//
//	go test ./store -run '^$' -bench EditNewest -benchtime 1x -v
func BenchmarkEditNewest(b *testing.B) {
	s := New(mongotest.Database(b), Options{QueryTimeout: 10 * time.Minute, BulkTimeout: 30 * time.Minute})
	ctx := b.Context()
	if _, _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	rows := make([]StudentInput, 100_000)
	for i := range rows {
		rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("E-%06d", i), FirstName: "Amina", SecondName: "Kamau", Class: "Form 2B"}
	}
	if _, errs, err := s.ImportStudents(ctx, rows, nil); err != nil || len(errs) > 0 {
		b.Fatal(err, errs)
	}
	// Let devmongo's id indexer index the new table (it looks every 3 s).
	time.Sleep(8 * time.Second)
	for _, sort := range []string{"id", "-id"} {
		name := map[string]string{"id": "oldest", "-id": "newest"}[sort]
		b.Run("edit-"+name, func(b *testing.B) {
			for b.Loop() {
				pg, err := s.ListStudents(ctx, ListOptions{PerPage: 1, Sort: sort})
				if err != nil {
					b.Fatal(err)
				}
				st := pg.Students[0]
				in := st.Input()
				in.Notes = fmt.Sprint(time.Now().UnixNano())
				if _, err := s.UpdateStudent(ctx, st.ID, in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("delete-"+name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				pg, err := s.ListStudents(ctx, ListOptions{PerPage: 1, Sort: sort})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := s.DeleteStudent(ctx, pg.Students[0].ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
