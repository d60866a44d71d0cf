package store

import (
	"cmp"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// What an update import changed, per student: the reference documents of
// an import's changed rows (historyrefs.go, one per block of refBlock
// student IDs) also hold, for each row, the fields it changed with their
// values before and after. No document a row: a 100,000-row update
// import writes ~100 documents as before, each larger by what its rows
// changed. A value is kept to maxDiffValue characters (then "…"), so a
// document stays far below MongoDB's 16 MB whatever the file holds.
//
// The block's diffs are one JSON value in a binary field, not an array of
// subdocuments: FerretDB converts and checks every value of a document
// it stores, and 100,000 rows of subdocuments cost 20 s and 3.8 GB of
// allocations against 13 ms for the references alone (BenchmarkChangedRefs).
//
// The values are the student's fields as the page shows them: whoever
// may read a student's history may read them (PermView, as the student's
// own entries' changes).

// maxDiffValue bounds each value kept of a row's change, in characters.
const maxDiffValue = 100

// rowDiff is one changed row of an import: its student and, flat, the
// field, the value before and after of each field it changed.
type rowDiff struct {
	ID     int64    `json:"i"`
	Fields []string `json:"f"` // field, before, after, field, before, after, …
}

// changedRefs are the references of entry (an import's) to the students
// it changed, with what each row changed: importRefs with the diffs.
func changedRefs(entry string, changed []ImportChange) []importRef {
	if len(changed) == 0 {
		return nil
	}
	diffs := make([]rowDiff, len(changed))
	for i, c := range changed {
		diffs[i] = rowDiff{ID: c.Current.ID, Fields: fieldDiffs(c.Current, c.After())}
	}
	slices.SortFunc(diffs, func(a, b rowDiff) int { return cmp.Compare(a.ID, b.ID) })
	ids := make([]int64, len(diffs))
	for i, df := range diffs {
		ids[i] = df.ID
	}
	refs := importRefs(entry, false, ids)
	at := 0
	for i := range refs {
		var block []rowDiff
		for at < len(diffs) && diffs[at].ID/refBlock == refs[i].block {
			if len(diffs[at].Fields) > 0 {
				block = append(block, diffs[at])
			}
			at++
		}
		if len(block) > 0 {
			refs[i].Diffs, _ = json.Marshal(block) // strings and numbers: cannot fail
		}
	}
	return refs
}

// fieldDiffs are the fields that differ between before and after, flat
// (rowDiff.Fields), each value bounded.
func fieldDiffs(before, after Student) []string {
	var out []string
	for _, f := range recordFields {
		if b, a := f.get(&before), f.get(&after); b != a {
			if out == nil {
				out = make([]string, 0, 6)
			}
			out = append(out, f.name, bounded(b), bounded(a))
		}
	}
	return out
}

// bounded is v cut to maxDiffValue characters, "…" marking the cut.
func bounded(v string) string {
	if utf8.RuneCountInString(v) <= maxDiffValue {
		return v
	}
	n := 0
	for i := range v {
		if n == maxDiffValue {
			return v[:i] + "…"
		}
		n++
	}
	return v
}

// diffOf is what ref's import changed of student id (nil: not recorded,
// or not readable).
func (r importRef) diffOf(id int64) []FieldChange {
	var diffs []rowDiff
	if len(r.Diffs) == 0 || json.Unmarshal(r.Diffs, &diffs) != nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(diffs, id, func(df rowDiff, id int64) int { return cmp.Compare(df.ID, id) })
	if !ok {
		return nil
	}
	f := diffs[i].Fields
	out := make([]FieldChange, 0, len(f)/3)
	for j := 0; j+2 < len(f); j += 3 {
		out = append(out, FieldChange{Field: f[j], Before: f[j+1], After: f[j+2]})
	}
	return out
}
