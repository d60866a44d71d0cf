package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// opChanges is what each import that touched student id changed of it,
// oldest first: "field: before → after; …" ("" for a creation).
func opChanges(t *testing.T, s *Store, id int64) []string {
	t.Helper()
	ops, err := s.StudentOperations(t.Context(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.Entry.File + " " + changesText(o.Changes)
	}
	return out
}

// TestImportChangesPerStudent: a student's page knows what each update
// import changed of it (fields, before and after; long values bounded),
// on both read paths, across reference blocks; an unchanged row and a
// created student carry none. Cross-tenant: schools A and B run the same
// imports' shape with the same student IDs, and B's student shows only
// B's changes (and A's only A's).
func TestImportChangesPerStudent(t *testing.T) {
	long := strings.Repeat("é", maxDiffValue+20)
	for _, mode := range []ReadModelMode{ReadModelOn, ReadModelOff} {
		t.Run(fmt.Sprintf("readmodel=%d", mode), func(t *testing.T) {
			t.Parallel()
			a, b := newStore(t, Options{ReadModel: mode}), newStore(t, Options{ReadModel: mode})
			n := refBlock + 10
			for _, s := range []*Store{a, b} {
				rows := rowsOf("X", n, "Amina")
				for i := range rows {
					rows[i].Class = "Form 1"
				}
				importRows(t, s, rows, ImportAdd, "roster.csv", CommandLine)
			}
			// A: a class and a status on the first, notes on the last
			// (the next block); the second row is in the file unchanged.
			last := fmt.Sprintf("X-%03d", n-1)
			importRows(t, a, []StudentInput{
				{RegistrationNo: "X-000", FirstName: "Amina", SecondName: "Otieno", Class: "Form 2", Status: StatusLeft},
				{RegistrationNo: "X-001", FirstName: "Amina", SecondName: "Otieno", Class: "Form 1"},
				{RegistrationNo: last, FirstName: "Amina", SecondName: "Otieno", Notes: long},
			}, ImportUpdate, "a-fix.csv", CommandLine)
			// B: the same IDs, other changes.
			importRows(t, b, []StudentInput{
				{RegistrationNo: "X-000", FirstName: "Baraka", SecondName: "Otieno"},
			}, ImportUpdate, "b-fix.csv", CommandLine)

			sa, sb := studentByRegNo(t, a, "X-000"), studentByRegNo(t, b, "X-000")
			if sa.ID != sb.ID {
				t.Fatalf("the test wants the same IDs in both schools: %d, %d", sa.ID, sb.ID)
			}
			bounded := strings.Repeat("é", maxDiffValue) + "…"
			for _, tt := range []struct {
				name string
				s    *Store
				reg  string
				want []string
			}{
				{"A's changed row", a, "X-000", []string{"roster.csv ", "a-fix.csv class: Form 1 → Form 2; status: enrolled → left"}},
				{"A's unchanged row", a, "X-001", []string{"roster.csv "}},
				{"A's row of the next block", a, last, []string{"roster.csv ", "a-fix.csv notes:  → " + bounded}},
				{"B's row with A's ID", b, "X-000", []string{"roster.csv ", "b-fix.csv first_name: Amina → Baraka"}},
				{"B's row A changed", b, last, []string{"roster.csv "}},
			} {
				st := studentByRegNo(t, tt.s, tt.reg)
				if got := opChanges(t, tt.s, st.ID); strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
				}
			}
		})
	}
}

// BenchmarkChangedRefs writes the references of an update import that
// changed 100,000 rows (FerretDB, the default engine): without what each
// row changed (as before), with it when each row changed its class, and
// when each changed its class and long notes (values at the bound).
func BenchmarkChangedRefs(b *testing.B) {
	s := New(mongotest.Database(b), Options{QueryTimeout: 30 * time.Minute, BulkTimeout: 30 * time.Minute})
	if _, _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	changes := func(notes string) []ImportChange {
		out := make([]ImportChange, n)
		for i := range out {
			cur := Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("C-%06d", i), FirstName: "Amina", SecondName: "Otieno", Class: "Form 1"}
			in := cur.Input()
			in.Class, in.Notes = "Form 2", notes
			out[i] = ImportChange{Current: cur, Input: in}
		}
		return out
	}
	class, notes := changes(""), changes(strings.Repeat("a long note ", 20))
	for _, tt := range []struct {
		name string
		refs func(entry string) []importRef
	}{
		{"ids only (before)", func(entry string) []importRef {
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = int64(i + 1)
			}
			return importRefs(entry, false, ids)
		}},
		{"with class changes", func(entry string) []importRef { return changedRefs(entry, class) }},
		{"with class and long notes", func(entry string) []importRef { return changedRefs(entry, notes) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if err := s.writeRefs(b.Context(), tt.refs(bson.NewObjectID().Hex())); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
