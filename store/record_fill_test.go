package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func init() {
	benchFill = benchRecord
	benchExtraOps = []ListOptions{
		{Class: "Form 2B"}, {Class: "Form 2B", Page: 50}, {Status: StatusLeft}, {EnrolledYear: 2024},
		{Class: "Form 2B", Query: "amina"}, {Query: "peanuts"}, {Query: "712"}, {Query: "example.org amina"},
	}
}

// BenchmarkRecordFilterWarm is BenchmarkRecordLatency's filters once the
// filter columns are made (every filter but the first after a change):
// go test ./store -run '^$' -bench RecordFilterWarm -benchtime 1x -v.
func BenchmarkRecordFilterWarm(b *testing.B) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		st := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i), FirstName: benchNames[i%len(benchNames)],
			SecondName: benchNames[(i/7)%len(benchNames)]}
		benchRecord(&st, i)
		doc := newStudentDoc(st)
		docs[i] = &doc
	}
	sn := buildSnapshot(docs, 0, time.Now())
	t0 := time.Now()
	sn.cols()
	b.Logf("filter columns made in %s", time.Since(t0))
	for b.Loop() {
		for _, o := range benchExtraOps[:5] {
			times := make([]time.Duration, 200)
			for i := range times {
				sn.cmu.Lock()
				sn.matches = nil
				sn.cmu.Unlock()
				t0 := time.Now()
				sn.page(o, 50)
				times[i] = time.Since(t0)
			}
			slices.Sort(times)
			b.Logf("%-40s p50 %10s p99 %10s", fmt.Sprintf("%+v", o), times[len(times)/2].Round(time.Microsecond), times[len(times)*99/100].Round(time.Microsecond))
		}
	}
}
