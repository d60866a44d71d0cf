package store

import (
	"slices"
	"strings"
	"sync"
)

// Zero-count choices (Django's list_filter): a field with choices (the
// status) offers every choice, and the class and enrolment-year filters
// offer every value the school holds, each with its count under the
// search and the other filters, 0 included (still a link). Both read
// paths narrow the counts (facets, studentFacets) and then pass them,
// with the school's own, through withZeros, so they agree.

// withZeros is narrow (the counts of a search and filters) with a count
// of 0 for every status and for each class and year of school (the
// whole school's counts) that narrow lacks. A class is one per ClassKey:
// narrow's spelling where it counts the class, the school's otherwise.
func withZeros(narrow, school Facets) Facets {
	out := Facets{Statuses: make([]Facet, 0, len(Statuses))}
	held := map[string]int64{}
	for _, f := range narrow.Statuses {
		held[f.Value] = f.Count
	}
	for _, st := range Statuses {
		out.Statuses = append(out.Statuses, Facet{Value: st, Count: held[st]})
	}

	out.Classes = zeroFill(narrow.Classes, school.Classes, ClassKey)
	out.EnrolledYears = zeroFill(narrow.EnrolledYears, school.EnrolledYears, func(year string) string { return year })
	return out
}

// zeroFill is narrow with a count of 0 for each value of school that no
// value of narrow has the key of, sorted as facets are.
func zeroFill(narrow, school []Facet, key func(string) string) []Facet {
	out := slices.Clone(narrow)
	counted := make(map[string]bool, len(narrow))
	for _, f := range narrow {
		counted[key(f.Value)] = true
	}
	for _, f := range school {
		if !counted[key(f.Value)] {
			out = append(out, Facet{Value: f.Value})
		}
	}
	return sortedFacets(out)
}

// schoolFacets are a snapshot's counts over the whole school, made the
// first time a list needs them after a change (a pass over the filter
// columns) and kept with those columns until the next change.
type schoolFacets struct {
	once   sync.Once
	counts Facets
}

func (sn *snapshot) schoolFacets() Facets {
	fc := sn.cols()
	fc.school.once.Do(func() { fc.school.counts = sn.counts(ListOptions{}) })
	return fc.school.counts
}

// sortedFacets orders facets by value, as facetList does.
func sortedFacets(fs []Facet) []Facet {
	slices.SortFunc(fs, func(a, b Facet) int { return strings.Compare(a.Value, b.Value) })
	return fs
}
