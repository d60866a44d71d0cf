package store

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkModelPage measures the read model's share of a list request at
// 100,000 students (no database, no HTTP): go test ./store -run '^$'
// -bench ModelPage.
func BenchmarkModelPage(b *testing.B) {
	first := []string{"Amina", "Kofi", "Zoë", "Wanjiru", "Chidi", "Ama", "Émile", "Thandiwe", "Juan", "Nia", "Otieno", "Fatou", "Kwame", "Lerato", "Yaw", "Aïcha"}
	second := []string{"Otieno", "Mensah", "Ñúñez", "Kamau", "Okafor", "Owusu", "Diallo", "Nkosi", "Mwangi", "Boateng", "Achieng", "Traoré", "Banda", "Mutua", "Adeyemi", "Moyo", "Njoroge"}
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i),
			FirstName: first[i%len(first)], SecondName: fmt.Sprintf("%s%d", second[(i/len(first))%len(second)], i%97)})
		docs[i] = &doc
	}
	start := time.Now()
	sn := buildSnapshot(docs, 0, time.Now())
	b.Logf("built the snapshot of %d students in %s", len(docs), time.Since(start))
	for _, o := range []ListOptions{
		{}, {Page: 1000}, {Sort: "-second_name", Page: 1000},
		{Query: "amina"}, {Query: "amina otieno"}, {Query: "u/2026/050000"}, {Query: "nobody here"},
	} {
		b.Run(fmt.Sprintf("q=%q,sort=%q,page=%d", o.Query, o.Sort, o.Page), func(b *testing.B) {
			for b.Loop() {
				if pg := sn.page(o, 50); pg.Total == 0 && o.Query != "nobody here" {
					b.Fatal("no students")
				}
			}
		})
		if o.Query == "" {
			continue
		}
		// The same search, never remembered (a new query each time).
		b.Run(fmt.Sprintf("uncached,q=%q,sort=%q,page=%d", o.Query, o.Sort, o.Page), func(b *testing.B) {
			for b.Loop() {
				sn.cmu.Lock()
				sn.matches = nil
				sn.cmu.Unlock()
				if pg := sn.page(o, 50); pg.Total == 0 && o.Query != "nobody here" {
					b.Fatal("no students")
				}
			}
		})
	}
}

// BenchmarkModelMatch compares an uncached search's matching through the
// trigram index with the full pass over every search text it replaced
// (before/after), at 100,000 students: go test ./store -run '^$' -bench
// ModelMatch -benchmem.
func BenchmarkModelMatch(b *testing.B) {
	first := []string{"Amina", "Kofi", "Zoë", "Wanjiru", "Chidi", "Ama", "Émile", "Thandiwe", "Juan", "Nia", "Otieno", "Fatou", "Kwame", "Lerato", "Yaw", "Aïcha"}
	second := []string{"Otieno", "Mensah", "Ñúñez", "Kamau", "Okafor", "Owusu", "Diallo", "Nkosi", "Mwangi", "Boateng", "Achieng", "Traoré", "Banda", "Mutua", "Adeyemi", "Moyo", "Njoroge"}
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i),
			FirstName: first[i%len(first)], SecondName: fmt.Sprintf("%s%d", second[(i/len(first))%len(second)], i%97)})
		docs[i] = &doc
	}
	start := time.Now()
	sn := buildSnapshot(docs, 0, time.Now())
	b.Logf("built the snapshot (index included) of %d students in %s", len(docs), time.Since(start))
	start = time.Now()
	buildTrigramIndex(sn.order[ordID])
	b.Logf("built the trigram index alone in %s", time.Since(start))
	for _, q := range []string{"amina", "zoe", "amina otieno", "u/2026/050000", "nobody here", "nunez13", "ya", "u/2026"} {
		words := searchWords(q)
		b.Run(fmt.Sprintf("index,q=%q", q), func(b *testing.B) {
			for b.Loop() {
				sn.matching(words)
			}
		})
		b.Run(fmt.Sprintf("fullpass,q=%q", q), func(b *testing.B) {
			for b.Loop() {
				sn.scan(words)
			}
		})
	}
}

// BenchmarkModelPut measures applying one student's write to a model of
// 100,000 (the model's write lock is held meanwhile): go test ./store
// -run '^$' -bench ModelPut.
func BenchmarkModelPut(b *testing.B) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i), FirstName: "Amina", SecondName: fmt.Sprintf("Otieno%d", i%97)})
		docs[i] = &doc
	}
	sn := buildSnapshot(docs, 0, time.Now())
	names := []string{"Zoë", "Zoë Wanjiru"} // the search text changes length each time
	i := 0
	for b.Loop() {
		i++
		doc := newStudentDoc(Student{ID: 50_000, RegistrationNo: "U/2026/049999", FirstName: names[i%2], SecondName: "Ñúñez"})
		sn.put(&doc)
	}
}

// BenchmarkSnapshotGC measures a full garbage collection while a school
// of 100,000 students is in memory (what every GC cycle of the app must
// mark), the students as decoded (eight objects each) and compacted
// (compactDocs). Run each in its own process, so that neither sees the
// other's heap: go test ./store -run '^$' -bench 'SnapshotGC/compact=false'
// -benchtime 20x, then the same with compact=true.
func BenchmarkSnapshotGC(b *testing.B) {
	for _, compact := range []bool{false, true} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			compactStudents = compact
			defer func() { compactStudents = true }()
			docs := make([]*studentDoc, 100_000)
			for i := range docs {
				doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i),
					FirstName: fmt.Sprintf("Amina%d", i%89), SecondName: fmt.Sprintf("Otieno%d", i%97)})
				docs[i] = &doc
			}
			sn := buildSnapshot(docs, 0, time.Now())
			docs = nil
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(sn)
		})
	}
}
