package store

import (
	"fmt"
	"testing"
	"time"
)

// TestZeroCountChoices: the sidebar's counts offer every status and every
// class and enrolment year of the school, at 0 where the search and the
// other filters leave none; the same on the read model and the database.
// Cross-tenant: school B has the same student IDs as A but other classes
// and years, and none of A's is ever a choice at B (nor B's at A).
func TestZeroCountChoices(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	aModel := newStore(t, Options{ReadModel: ReadModelOn})
	aDB := New(aModel.db, Options{ReadModel: ReadModelOff})
	bModel := newStore(t, Options{ReadModel: ReadModelOn})
	bDB := New(bModel.db, Options{ReadModel: ReadModelOff})
	for i, in := range []StudentInput{
		{Class: "Form 1A", Status: StatusEnrolled, EnrolledOn: "2020-01-06"},
		{Class: "form 1a", Status: StatusEnrolled, EnrolledOn: "2021-01-06"},
		{Class: "Form 2B", Status: StatusGraduated, EnrolledOn: "2020-01-06"},
		{Class: "", Status: StatusEnrolled},
	} {
		in.RegistrationNo, in.FirstName, in.SecondName = fmt.Sprintf("A-%d", i), "Amina", fmt.Sprintf("Otieno%d", i)
		if i == 2 {
			in.FirstName = "Baraka"
		}
		a, err := aModel.CreateStudent(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		in.RegistrationNo, in.Class, in.EnrolledOn = fmt.Sprintf("B-%d", i), fmt.Sprintf("Grade %d", 7+i%2), "2019-01-07"
		b, err := bModel.CreateStudent(ctx, in)
		if err != nil || b.ID != a.ID {
			t.Fatalf("the test wants the same IDs in both schools: %v %v %v", a, b, err)
		}
	}
	// the school's statuses in order, then Statuses' zeros
	st := func(enrolled, graduated int64) []Facet {
		return []Facet{{StatusEnrolled, enrolled}, {StatusGraduated, graduated}, {StatusLeft, 0}, {StatusSuspended, 0}}
	}
	for _, tt := range []struct {
		name string
		s    [2]*Store // read model, database
		o    ListOptions
		want Facets
	}{
		{"A whole school", [2]*Store{aModel, aDB}, ListOptions{},
			Facets{[]Facet{{"", 1}, {"Form 1A", 2}, {"Form 2B", 1}}, st(3, 1), []Facet{{"", 1}, {"2020", 2}, {"2021", 1}}}},
		{"A search", [2]*Store{aModel, aDB}, ListOptions{Query: "baraka"},
			Facets{[]Facet{{"", 0}, {"Form 1A", 0}, {"Form 2B", 1}}, st(0, 1), []Facet{{"", 0}, {"2020", 1}, {"2021", 0}}}},
		{"A search matching none", [2]*Store{aModel, aDB}, ListOptions{Query: "nobody"},
			Facets{[]Facet{{"", 0}, {"Form 1A", 0}, {"Form 2B", 0}}, st(0, 0), []Facet{{"", 0}, {"2020", 0}, {"2021", 0}}}},
		{"A class filter", [2]*Store{aModel, aDB}, ListOptions{Class: "FORM 2b"},
			Facets{[]Facet{{"", 1}, {"Form 1A", 2}, {"Form 2B", 1}}, st(0, 1), []Facet{{"", 0}, {"2020", 1}, {"2021", 0}}}},
		{"A status and year", [2]*Store{aModel, aDB}, ListOptions{Status: StatusGraduated, EnrolledYear: 2021},
			Facets{[]Facet{{"", 0}, {"Form 1A", 0}, {"Form 2B", 0}}, st(1, 0), []Facet{{"", 0}, {"2020", 1}, {"2021", 0}}}},
		{"A status nobody has", [2]*Store{aModel, aDB}, ListOptions{Status: StatusLeft},
			Facets{[]Facet{{"", 0}, {"Form 1A", 0}, {"Form 2B", 0}}, st(3, 1), []Facet{{"", 0}, {"2020", 0}, {"2021", 0}}}},
		{"B whole school", [2]*Store{bModel, bDB}, ListOptions{},
			Facets{[]Facet{{"Grade 7", 2}, {"Grade 8", 2}}, st(3, 1), []Facet{{"2019", 4}}}},
		{"B search", [2]*Store{bModel, bDB}, ListOptions{Query: "baraka"},
			Facets{[]Facet{{"Grade 7", 1}, {"Grade 8", 0}}, st(0, 1), []Facet{{"2019", 1}}}},
		{"B A's class", [2]*Store{bModel, bDB}, ListOptions{Class: "Form 1A"},
			Facets{[]Facet{{"Grade 7", 2}, {"Grade 8", 2}}, st(0, 0), []Facet{{"2019", 0}}}},
	} {
		for i, s := range tt.s {
			got, err := s.studentFacets(ctx, tt.o)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%s (%s): %v %v\nwant %v", tt.name, []string{"read model", "database"}[i], got, err, tt.want)
			}
			if tt.o.Query == "" {
				continue
			}
			_, withList, err := s.ListStudentsWithFacets(ctx, tt.o)
			if err != nil || fmt.Sprint(withList) != fmt.Sprint(tt.want) {
				t.Errorf("%s (%s) with the list: %v %v\nwant %v", tt.name, []string{"read model", "database"}[i], withList, err, tt.want)
			}
		}
	}
}

// BenchmarkModelFacets measures the sidebar's counts on the read model at
// 100,000 students in 100 classes (no database, no HTTP), without the
// zero-count choices (counts: as before) and with them (facets):
// go test ./store -run '^$' -bench ModelFacets.
func BenchmarkModelFacets(b *testing.B) {
	docs := make([]*studentDoc, 100_000)
	for i := range docs {
		doc := newStudentDoc(Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("U/2026/%06d", i),
			FirstName: []string{"Amina", "Kofi", "Zoë", "Wanjiru"}[i%4], SecondName: fmt.Sprintf("Otieno%d", i%97),
			Class: fmt.Sprintf("C%03d", i%100), Status: Statuses[i%3], EnrolledOn: fmt.Sprintf("%d-01-06", 2015+i%10)})
		docs[i] = &doc
	}
	sn := buildSnapshot(docs, 0, time.Now())
	for _, o := range []ListOptions{{}, {Class: "C007"}, {Status: StatusLeft, EnrolledYear: 2023}, {Query: "amina", Class: "C007"}} {
		for _, how := range []string{"counts", "facets"} {
			b.Run(fmt.Sprintf("%s,q=%q,class=%q,status=%q,year=%d", how, o.Query, o.Class, o.Status, o.EnrolledYear), func(b *testing.B) {
				sn.facets(o) // the filter columns and the search made once, as on a warm app
				for b.Loop() {
					if how == "counts" {
						sn.counts(o)
					} else {
						sn.facets(o)
					}
				}
			})
		}
	}
}
