package store

import (
	"fmt"
	"runtime"
	"strings"
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
	buildTrigramIndex(sn.ids, sn.text, sn.at)
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

// BenchmarkModelMemory measures what a model of 100,000 students holds
// live (as a starting app has it: decoded from its saved copy, then its
// search index built) and what a full garbage collection costs with it
// in memory: go test ./store -run '^$' -bench ModelMemory -benchtime 20x.
func BenchmarkModelMemory(b *testing.B) {
	b.Run("names", func(b *testing.B) { benchModelMemory(b, false) })
	b.Run("record", func(b *testing.B) { benchModelMemory(b, true) })
}

// benchRecord fills st's schema 3 fields with values as a school's
// register holds them (every field set).
func benchRecord(st *Student, i int) {
	first, second := benchNames[(i/3)%len(benchNames)], benchNames[(i/11)%len(benchNames)]
	st.Class = fmt.Sprintf("Form %d%c", 1+i%4, 'A'+rune(i/4%5))
	st.DateOfBirth = fmt.Sprintf("%d-%02d-%02d", 2008+i%7, 1+i%12, 1+i%28)
	st.Gender = []string{"F", "M"}[i%2]
	st.GuardianName = first + " " + second
	st.GuardianPhone = fmt.Sprintf("+254 7%02d %03d %03d", i%100, (i/100)%1000, (i*7)%1000)
	st.GuardianEmail = strings.ToLower(first+"."+second) + fmt.Sprintf("%d@example.org", i%1000)
	st.Status = Statuses[[]int{0, 0, 0, 0, 0, 0, 0, 1, 2, 3}[i%10]]
	st.StatusDate = fmt.Sprintf("%d-%02d-%02d", 2019+i%7, 1+i%12, 1+i%28)
	st.EnrolledOn = fmt.Sprintf("%d-01-%02d", 2019+i%7, 4+i%10)
	st.Notes = benchNotes[i%len(benchNotes)]
}

var benchNotes = []string{"Allergic to peanuts; inhaler kept in the office.", "Walks home with an older sibling.",
	"Transferred from Moi Primary.", "Scholarship: fees paid by the county.", "Needs glasses for the board.",
	"Prefect, Simba house.", "Collected by the guardian on Fridays.", "Plays in the school band."}

func benchModelMemory(b *testing.B, record bool) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("NBI-%06d", i),
			FirstName: benchNames[i%len(benchNames)], SecondName: benchNames[(i/7)%len(benchNames)],
			CreatedAt: time.Now().Truncate(time.Millisecond), UpdatedAt: time.Now().Truncate(time.Millisecond)}
		if record {
			benchRecord(&st, i)
		}
		doc := newStudentDoc(st)
		docs[i] = &doc
	}
	raw := encodeSnapshot(buildSnapshot(docs, 7, time.Now()), "tenant")
	payload := cap(raw)
	docs = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sn, err := decodeSnapshot(raw, "tenant", 7, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	sn.tri = buildTrigramIndex(sn.ids, sn.text, sn.at)
	raw = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	tri := len(sn.tri.lists) + 8*len(sn.tri.grams)
	live := float64(after.HeapAlloc+uint64(payload)-before.HeapAlloc) / 1e6 // the payload was live before, not after
	b.Logf("live heap of the model: %.1f MB (its trigram index %.1f MB; records %.1f MB, search texts %.1f MB; payload %.1f MB)",
		live, float64(tri)/1e6, float64(len(sn.recs))/1e6, float64(len(sn.text))/1e6, float64(payload)/1e6)
	b.ReportMetric(live, "MB-live")
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(sn)
}

// benchNames are first and second names of the Nairobi register (as
// campus-bench's rows).
var benchNames = []string{"Amina", "Kamau", "Wanjiru", "Otieno", "Achieng", "Mwangi", "Njeri", "Odhiambo", "Chebet", "Kiprop",
	"Akinyi", "Mutua", "Wambui", "Omondi", "Nyambura", "Kiptoo", "Atieno", "Kariuki", "Moraa", "Onyango"}
