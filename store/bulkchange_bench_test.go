package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/mongotest"
)

// The benches of this file price writes of one student of a
// 100,000-student school on the embedded FerretDB v1, the oldest and the
// newest: FerretDB hands SQLite an `_id` equality only for a string `_id`
// that is the filter's one key, so before schema 4 (int64 `_id`s) and
// before one-key writes (rowlock.go) every write read the table until it
// met the row: the newest cost a pass over the whole school each.
//
//	go test ./store -run '^$' -bench 'BulkChangeNewest|EditNewest|UpdateImportNewest' -benchtime 1x -v

// bigSchool is a migrated school of 100,000 students in class "Form 2B",
// registration numbers prefix-000000 … in ID order.
func bigSchool(b *testing.B, prefix string) *Store {
	s := New(mongotest.Database(b), Options{QueryTimeout: 10 * time.Minute, BulkTimeout: 30 * time.Minute})
	ctx := b.Context()
	if _, _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	rows := make([]StudentInput, 100_000)
	lines := make([]int, len(rows))
	for i := range rows {
		rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("%s-%06d", prefix, i), FirstName: "Amina", SecondName: "Kamau", Class: "Form 2B"}
		lines[i] = i + 2
	}
	if _, errs, err := s.ImportStudents(ctx, rows, lines); err != nil || len(errs) > 0 {
		b.Fatal(err, errs)
	}
	// Let devmongo's id indexer index the new table (it looks every 3 s):
	// a school that has run for a while has its index.
	time.Sleep(8 * time.Second)
	return s
}

// BenchmarkBulkChangeNewest prices a change of class (the admin's
// actions menu) of the 1 and the 10 oldest or newest students.
func BenchmarkBulkChangeNewest(b *testing.B) {
	s := bigSchool(b, "U")
	ctx := b.Context()
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

// BenchmarkEditNewest prices the hand edit and the hand delete of the
// oldest and the newest student (the admin's student form).
func BenchmarkEditNewest(b *testing.B) {
	s := bigSchool(b, "E")
	ctx := b.Context()
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

// BenchmarkUpdateImportNewest prices an update import (the preview's plan
// applied) that changes the class of the 1,000 newest students: three
// one-key writes per changed row (rowlock.go).
func BenchmarkUpdateImportNewest(b *testing.B) {
	s := bigSchool(b, "I")
	ctx := b.Context()
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		class := fmt.Sprintf("Form %d", time.Now().UnixNano())
		rows := make([]StudentInput, n)
		for i := range rows {
			rows[i] = StudentInput{RegistrationNo: fmt.Sprintf("I-%06d", 100_000-n+i), FirstName: "Amina", SecondName: "Kamau", Class: class}
		}
		plan, err := s.PlanImport(ctx, rows, nil, nil, ImportUpdate)
		if err != nil || len(plan.Errors) > 0 || len(plan.Changed) != n {
			b.Fatalf("plan: %d changed, %v %v", len(plan.Changed), plan.Errors, err)
		}
		b.StartTimer()
		if _, err := s.ApplyImport(ctx, plan, CommandLine); err != nil {
			b.Fatal(err)
		}
	}
}
