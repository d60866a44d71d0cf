package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// This file compiles in the tree before schema 3 too (copied there for
// the side-by-side run): the schema 3 parts come from record_fill_test.go.
var (
	benchFill     func(st *Student, i int) // fills the record's other fields (nil: names only)
	benchExtraOps []ListOptions            // the filters (none before schema 3)
)

// BenchmarkRecordLatency prints the read model's latency (p50, p99 of
// 200 runs; searches never remembered) of list, filter and search pages
// at 100,000 students, every field filled when the tree has them:
// go test ./store -run '^$' -bench RecordLatency -benchtime 1x.
func BenchmarkRecordLatency(b *testing.B) {
	first := []string{"Amina", "Kofi", "Zoë", "Wanjiru", "Chidi", "Ama", "Émile", "Thandiwe", "Juan", "Nia", "Otieno", "Fatou", "Kwame", "Lerato", "Yaw", "Aïcha"}
	second := []string{"Otieno", "Mensah", "Ñúñez", "Kamau", "Okafor", "Owusu", "Diallo", "Nkosi", "Mwangi", "Boateng", "Achieng", "Traoré", "Banda", "Mutua", "Adeyemi", "Moyo", "Njoroge"}
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i),
			FirstName: first[i%len(first)], SecondName: fmt.Sprintf("%s%d", second[(i/len(first))%len(second)], i%97)}
		if benchFill != nil {
			benchFill(&st, i)
		}
		doc := newStudentDoc(st)
		docs[i] = &doc
	}
	start := time.Now()
	sn := buildSnapshot(docs, 0, time.Now())
	b.Logf("built the snapshot of %d students in %s (record fields: %v)", len(docs), time.Since(start), benchFill != nil)
	ops := append([]ListOptions{
		{}, {Page: 1000}, {Sort: "-second_name", Page: 1000},
		{Query: "amina"}, {Query: "amina otieno"}, {Query: "u/2026/050000"}, {Query: "nobody here"},
	}, benchExtraOps...)
	for b.Loop() {
		b.Logf("%-58s %10s %10s", "list options (50 a page)", "p50", "p99")
		for _, o := range ops {
			times := make([]time.Duration, 200)
			for i := range times {
				sn.forget()
				t0 := time.Now()
				sn.page(o, 50)
				times[i] = time.Since(t0)
			}
			slices.Sort(times)
			b.Logf("%-58s %10s %10s", fmt.Sprintf("%+v", o), times[len(times)/2].Round(time.Microsecond), times[len(times)*99/100].Round(time.Microsecond))
		}
	}
}
