package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/mongotest"
)

// BenchmarkBulkChangeNewest prices a change of class of the newest
// students of a 100,000-student school: on the embedded FerretDB v1
// every write by an int64 `_id` reads the table until it finds the row
// (FerretDB hands SQLite only string and ObjectID `_id`s), so the
// newest students cost a pass over the whole school each.
//
//	go test ./store -run '^$' -bench BulkChangeNewest -benchtime 1x -v
func BenchmarkBulkChangeNewest(b *testing.B) {
	s := New(mongotest.Database(b), Options{QueryTimeout: 10 * time.Minute, BulkTimeout: 30 * time.Minute})
	ctx := b.Context()
	if _, _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	rows := make([]StudentInput, 100_000)
	lines := make([]int, len(rows))
	for i := range rows {
		rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("U-%06d", i), FirstName: "Amina", SecondName: "Kamau", Class: "Form 2B"}
		lines[i] = i + 2
	}
	if _, errs, err := s.ImportStudents(ctx, rows, lines); err != nil || len(errs) > 0 {
		b.Fatal(err, errs)
	}
	for _, tc := range []struct {
		name string
		sort string
	}{{"oldest", "id"}, {"newest", "-id"}} {
		pg, err := s.ListStudents(ctx, ListOptions{PerPage: 10, Sort: tc.sort})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, len(pg.Students))
		for i, st := range pg.Students {
			ids[i] = st.ID
		}
		for _, n := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s-%d", tc.name, n), func(b *testing.B) {
				for b.Loop() {
					class := fmt.Sprintf("Form %d %d", n, time.Now().UnixNano())
					if _, err := s.ChangeStudents(ctx, ids[:n], StudentsChange{SetClass: true, Class: class}, CommandLine); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
