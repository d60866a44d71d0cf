package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestMatchingIDs: "select all N matching" selects what the list shows
// with its search, on the read model and on the database alike, and
// refuses beyond its limit with the number.
func TestMatchingIDs(t *testing.T) {
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			s := newStore(t, Options{ReadModel: mode})
			var all, amina, class1A []int64
			for i := range 30 {
				first := "Baraka"
				if i%3 == 0 {
					first = "Amina"
				}
				in := StudentInput{RegistrationNo: fmt.Sprintf("M-%02d", i), FirstName: first, SecondName: "Otieno"}
				if i < 10 {
					in.Class = "1A"
				}
				st, err := s.CreateStudent(t.Context(), in)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, st.ID)
				if i < 10 {
					class1A = append(class1A, st.ID)
				}
				if first == "Amina" {
					amina = append(amina, st.ID)
				}
			}
			for _, tt := range []struct {
				query string
				class string
				limit int
				want  []int64
				total int64
				err   error
			}{
				{"", "", 100, all, 30, nil},
				{"amina", "", 100, amina, 10, nil},
				{"AMÍNA otieno", "", 10, amina, 10, nil},
				{"nobody", "", 100, []int64{}, 0, nil},
				{"", "1A", 10, class1A, 10, nil},
				{"amina", "1A", 10, []int64{amina[0], amina[1], amina[2], amina[3]}, 4, nil}, // M-00, 03, 06, 09
				{"", "1B", 10, []int64{}, 0, nil},
				{"", "", 29, nil, 30, ErrTooManySelected},
				{"amina", "", 9, nil, 10, ErrTooManySelected},
			} {
				ids, total, err := s.MatchingIDs(t.Context(), ListOptions{Query: tt.query, Class: tt.class, Sort: "-first_name", Page: 2}, tt.limit)
				if !errors.Is(err, tt.err) || total != tt.total || len(ids) != len(tt.want) || !slices.Equal(ids, tt.want) {
					t.Errorf("%q %q (limit %d): %v, %d, %v; want %v, %d, %v", tt.query, tt.class, tt.limit, ids, total, err, tt.want, tt.total, tt.err)
				}
			}
			// The list with its facets is the list and the facets.
			o := ListOptions{Query: "amina", Class: "1A", PerPage: 3, Page: 2}
			pg, f, err := s.ListStudentsWithFacets(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			wantPg, err := s.ListStudents(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			// Its counts are the search's, each narrowed by the other
			// filters (Django 5's facets): 10 Aminas, 4 of them in 1A.
			// Every status and each class of the school is a choice, 0 or not.
			wantF := Facets{Classes: []Facet{{"", 6}, {"1A", 4}}, Statuses: []Facet{{StatusEnrolled, 4}, {StatusGraduated, 0}, {StatusLeft, 0}, {StatusSuspended, 0}}, EnrolledYears: []Facet{{"", 4}}}
			if fmt.Sprint(pg) != fmt.Sprint(wantPg) || fmt.Sprint(f) != fmt.Sprint(wantF) || pg.Total != 4 || len(pg.Students) != 1 {
				t.Errorf("with facets: %v %v\nwant %v %v", pg, f, wantPg, wantF)
			}
			// The export of selected IDs holds those and nothing else.
			var buf bytes.Buffer
			if err := s.ExportStudents(t.Context(), &buf, ExportOptions{IDs: amina[:2], NoBOM: true}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(buf.String(), "\n"); got != 3 || !strings.Contains(buf.String(), "M-00,Amina") || !strings.Contains(buf.String(), "M-03,Amina") {
				t.Errorf("export of 2 IDs:\n%s", buf.String())
			}
		})
	}
}
