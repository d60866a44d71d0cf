package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNormalizeStudentRecord(t *testing.T) {
	t.Parallel()
	today := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	base := StudentInput{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}
	with := func(f func(*StudentInput)) StudentInput {
		in := base
		f(&in)
		return in
	}
	for _, tc := range []struct {
		name  string
		in    StudentInput
		field string // the field in error; "" for none
		msg   string // part of its message
		check func(StudentInput) string
	}{
		{name: "names only", in: base, check: func(out StudentInput) string {
			if out.Status != "" {
				return "status " + out.Status + ", want none (enrolled when stored)"
			}
			return ""
		}},
		{name: "full record", in: with(func(in *StudentInput) {
			in.Class, in.DateOfBirth, in.Gender = "  Form   2B ", "2012-02-29", "F"
			in.GuardianName, in.GuardianPhone, in.GuardianEmail = "Grace Odhiambo", "+254 (712) 345-678", "grace@example.org"
			in.Status, in.StatusDate, in.EnrolledOn, in.Notes = "Graduated", "2026-11-30", "2020-01-06", "Allergic to peanuts.\r\nSits in front."
		}), check: func(out StudentInput) string {
			if out.Class != "Form 2B" || out.Status != StatusGraduated || out.Notes != "Allergic to peanuts.\nSits in front." {
				return fmt.Sprintf("normalized to %+v", out)
			}
			return ""
		}},
		{name: "future birth", in: with(func(in *StudentInput) { in.DateOfBirth = "2027-01-01" }), field: "date_of_birth", msg: "in the future"},
		{name: "newborn", in: with(func(in *StudentInput) { in.DateOfBirth = "2026-06-01" }), field: "date_of_birth", msg: "at least a year"},
		{name: "too old", in: with(func(in *StudentInput) { in.DateOfBirth = "1920-06-01" }), field: "date_of_birth", msg: "within the last 100 years"},
		{name: "not a date", in: with(func(in *StudentInput) { in.DateOfBirth = "12/03/2014" }), field: "date_of_birth", msg: "YYYY-MM-DD"},
		{name: "no 30 February", in: with(func(in *StudentInput) { in.EnrolledOn = "2020-02-30" }), field: "enrolled_on", msg: "not a date"},
		{name: "future enrolment", in: with(func(in *StudentInput) { in.EnrolledOn = "2026-12-07" }), field: "enrolled_on", msg: "in the future"},
		{name: "enrolled today", in: with(func(in *StudentInput) { in.EnrolledOn = "2026-12-06" })},
		{name: "enrolled before birth", in: with(func(in *StudentInput) { in.DateOfBirth, in.EnrolledOn = "2014-05-01", "2013-01-01" }),
			field: "enrolled_on", msg: "before the date of birth"},
		{name: "future status date", in: with(func(in *StudentInput) { in.StatusDate = "2030-01-01" }), field: "status_date", msg: "in the future"},
		{name: "unknown status", in: with(func(in *StudentInput) { in.Status = "expelled" }), field: "status", msg: "enrolled, graduated, left, suspended"},
		{name: "phone letters", in: with(func(in *StudentInput) { in.GuardianPhone = "call me" }), field: "guardian_phone", msg: "7 to 15 digits"},
		{name: "phone short", in: with(func(in *StudentInput) { in.GuardianPhone = "12345" }), field: "guardian_phone", msg: "7 to 15 digits"},
		{name: "phone long", in: with(func(in *StudentInput) { in.GuardianPhone = "+1234567890123456" }), field: "guardian_phone", msg: "7 to 15 digits"},
		{name: "plus inside", in: with(func(in *StudentInput) { in.GuardianPhone = "0712+345678" }), field: "guardian_phone", msg: "leading +"},
		{name: "email", in: with(func(in *StudentInput) { in.GuardianEmail = "grace at example" }), field: "guardian_email", msg: "valid email"},
		{name: "email with name", in: with(func(in *StudentInput) { in.GuardianEmail = "Grace <grace@example.org>" }), field: "guardian_email", msg: "valid email"},
		{name: "class too long", in: with(func(in *StudentInput) { in.Class = strings.Repeat("x", MaxClassLen+1) }), field: "class", msg: "at most 40"},
		{name: "class tab", in: with(func(in *StudentInput) { in.Gender = "a\tb" }), field: "gender", msg: "control characters"},
		{name: "guardian too long", in: with(func(in *StudentInput) { in.GuardianName = strings.Repeat("é", MaxNameLen+1) }), field: "guardian_name", msg: "at most 255"},
		{name: "notes too long", in: with(func(in *StudentInput) { in.Notes = strings.Repeat("n", MaxNotesLen+1) }), field: "notes", msg: "at most 2000"},
		{name: "notes bell", in: with(func(in *StudentInput) { in.Notes = "ring\a" }), field: "notes", msg: "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, fe := normalizeStudentAt(tc.in, today)
			if tc.field == "" {
				if fe != nil {
					t.Fatalf("errors %v, want none", fe)
				}
			} else if msg := fe[tc.field]; !strings.Contains(msg, tc.msg) {
				t.Fatalf("%s: %q, want it to say %q (all: %v)", tc.field, msg, tc.msg, fe)
			} else if len(fe) != 1 {
				t.Errorf("errors %v, want only %s", fe, tc.field)
			}
			if tc.check != nil {
				if msg := tc.check(out); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// recordStudents creates a class register with every field in use.
func recordStudents(t *testing.T, s *Store) []Student {
	t.Helper()
	var out []Student
	classes := []string{"Form 1A", "Form 2B", "form 2b", "Grade 7", "FORM 1A", "", " Form  2B "}
	for i, class := range classes {
		in := StudentInput{RegistrationNo: fmt.Sprintf("R-%02d", i), FirstName: []string{"Amina", "Kofi", "Zoë", "Émile"}[i%4],
			SecondName: fmt.Sprintf("Ñúñez%d", i), Class: class, DateOfBirth: fmt.Sprintf("201%d-0%d-1%d", i%6, i%9+1, i),
			GuardianName: fmt.Sprintf("Guardian Wanjiru%d", i), GuardianPhone: fmt.Sprintf("+254 712 000 %03d", i),
			GuardianEmail: fmt.Sprintf("parent%d@example.org", i), Status: Statuses[i%len(Statuses)],
			EnrolledOn: fmt.Sprintf("202%d-01-0%d", i%3, i%7+1), Notes: fmt.Sprintf("Note %d: plays the kora\nand chess", i)}
		st, err := s.CreateStudent(t.Context(), in)
		if err != nil {
			t.Fatalf("create %+v: %v", in, err)
		}
		out = append(out, st)
	}
	return out
}

func TestListFiltersModelAndQueries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := newStore(t, Options{ReadModel: ReadModelOn})
	db := New(mem.db, Options{ReadModel: ReadModelOff})
	all := recordStudents(t, mem)
	got, err := db.Student(ctx, all[3].ID)
	if err != nil || got.Class != "Grade 7" || got.GuardianPhone != "+254 712 000 003" || got.Notes != all[3].Notes || got.EnrolledOn != "2020-01-04" {
		t.Fatalf("read back %+v, %v; created %+v", got, err, all[3])
	}
	want := func(o ListOptions) []string {
		var out []string
		for _, st := range all {
			if (o.Class == "" || ClassKey(st.Class) == ClassKey(o.Class)) && (o.Status == "" || st.Status == o.Status) &&
				(o.EnrolledYear == 0 || st.EnrolledYear() == o.EnrolledYear) {
				out = append(out, st.RegistrationNo)
			}
		}
		return out
	}
	for _, o := range []ListOptions{
		{}, {Class: "Form 2B"}, {Class: "form 2b"}, {Class: " FORM   2B"}, {Class: "Förm 1a"}, {Class: "Grade 7"}, {Status: StatusLeft}, {Status: StatusEnrolled},
		{EnrolledYear: 2021}, {EnrolledYear: 1999}, {Class: "Form 2B", Status: StatusEnrolled}, {Class: "Form 1A", EnrolledYear: 2020},
		{Class: "Form 2B", Query: "kora"}, {Query: "wanjiru3"}, {Query: "wanjiru3", NamesOnly: true}, {Query: "nunez3 emile", NamesOnly: true},
		{Query: "kora", NamesOnly: true}, {Query: "712000004"}, {Query: "parent5@example"}, {Query: "form 2b chess"},
	} {
		o.PerPage, o.Sort = MaxPerPage, "registration_no"
		for name, s := range map[string]*Store{"model": mem, "queries": db} {
			pg, err := s.ListStudents(ctx, o)
			if err != nil {
				t.Fatalf("%s %+v: %v", name, o, err)
			}
			w := want(o)
			switch o.Query {
			case "wanjiru3":
				w = []string{"R-03"}
			case "712000004":
				w = []string{"R-04"}
			case "parent5@example":
				w = []string{"R-05"}
			case "form 2b chess":
				w = []string{"R-01", "R-02", "R-06"}
			case "nunez3 emile":
				w = []string{"R-03"}
			}
			if o.NamesOnly && o.Query != "nunez3 emile" { // the guardian, the notes: not for the public search
				w = nil
			}
			if !slices.Equal(regNos(pg), w) || pg.Total != int64(len(w)) {
				t.Errorf("%s %+v: %v (total %d), want %v", name, o, regNos(pg), pg.Total, w)
			}
		}
	}
	f1, err1 := mem.StudentFacets(ctx)
	f2, err2 := db.StudentFacets(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	wantFacets := Facets{
		Classes:       []Facet{{"", 1}, {"FORM 1A", 2}, {"Form 2B", 3}, {"Grade 7", 1}}, // a tie: the first in byte order
		Statuses:      []Facet{{StatusEnrolled, 2}, {StatusGraduated, 2}, {StatusLeft, 2}, {StatusSuspended, 1}},
		EnrolledYears: []Facet{{"2020", 3}, {"2021", 2}, {"2022", 2}},
	}
	for name, f := range map[string]Facets{"model": f1, "queries": f2} {
		if fmt.Sprint(f) != fmt.Sprint(wantFacets) {
			t.Errorf("%s facets %+v, want %+v", name, f, wantFacets)
		}
	}
	// Counts narrowed by the search and the other filters: the same on
	// both paths, and each count is what listing that value would total.
	for _, o := range []ListOptions{{Query: "kora"}, {Class: "form 2B"}, {Status: StatusEnrolled}, {EnrolledYear: 2020, Class: "FORM 1a"},
		{Query: "chess", Status: StatusLeft, EnrolledYear: 2021}, {Query: "nobody"}} {
		fm, err1 := mem.studentFacets(ctx, o)
		fq, err2 := db.studentFacets(ctx, o)
		if err1 != nil || err2 != nil || fmt.Sprint(fm) != fmt.Sprint(fq) {
			t.Errorf("%+v: model %v %v, queries %v %v", o, fm, err1, fq, err2)
		}
		for _, f := range fm.Classes {
			n := o
			n.Class = f.Value
			if f.Value == "" {
				continue
			}
			if got := int64(len(want(n))); o.Query == "" && got != f.Count {
				t.Errorf("%+v: class %q counted %d, lists %d", o, f.Value, f.Count, got)
			}
		}
	}
	// A change is seen by the filters and counts at once.
	in := all[5].Input()
	in.Class = "Grade 7"
	if _, err := mem.UpdateStudent(ctx, all[5].ID, in); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"model": mem, "queries": db} {
		pg, err := s.ListStudents(ctx, ListOptions{Class: "Grade 7", Sort: "registration_no"})
		if err != nil || !slices.Equal(regNos(pg), []string{"R-03", "R-05"}) {
			t.Errorf("%s after the change: %v %v", name, regNos(pg), err)
		}
		f, err := s.StudentFacets(ctx)
		if err != nil || fmt.Sprint(f.Classes) != fmt.Sprint([]Facet{{"FORM 1A", 2}, {"Form 2B", 3}, {"Grade 7", 2}}) {
			t.Errorf("%s facets after the change: %v %v", name, f.Classes, err)
		}
	}
}

// TestRecordRoundTrips: every field survives the read model, its saved
// copy and an update that changes some of them; history names the
// changed fields.
func TestRecordRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{ReadModel: ReadModelOn})
	all := recordStudents(t, s)
	for _, st := range all {
		got, err := s.Student(ctx, st.ID)
		if err != nil || !sameStudent(got, st) {
			t.Fatalf("model has %+v, %v; want %+v", got, err, st)
		}
	}
	s.rm.mu.RLock()
	sn := s.rm.snap
	payload := encodeSnapshot(sn, "tenant-x")
	s.rm.mu.RUnlock()
	back, err := decodeSnapshot(payload, "tenant-x", sn.seq, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for pos := range back.ids {
		if got, want := back.student(pos), all[pos]; !sameStudent(got, want) {
			t.Errorf("saved copy has %+v, want %+v", got, want)
		}
		if string(back.search(pos)) != newStudentDoc(all[pos]).Search {
			t.Errorf("saved copy's search %q, want %q", back.search(pos), newStudentDoc(all[pos]).Search)
		}
	}
	in := all[0].Input()
	in.Class, in.Status, in.StatusDate = "Form 3C", StatusSuspended, "2026-01-05"
	after, err := s.UpdateStudent(ctx, all[0].ID, in)
	if err != nil {
		t.Fatal(err)
	}
	e := StudentChanged(Actor{Username: "x"}, all[0], after)
	var fields []string
	for _, c := range e.Changes {
		fields = append(fields, c.Field)
	}
	if !slices.Equal(fields, []string{"class", "status", "status_date"}) {
		t.Errorf("history changes %v", e.Changes)
	}
}

func sameStudent(a, b Student) bool {
	return a.ID == b.ID && sameRecord(a, b) && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// TestClassKey: one key for a class whatever its case, spacing and
// accents; the ASCII short cut gives what Fold gives.
func TestClassKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Form 2B", "form 2b"}, {"  form   2b ", "form 2b"}, {"FORM\t2B\n", "form 2b"}, {"Förm 2B", "form 2b"},
		{"", ""}, {"   ", ""}, {"Form\x012B", "form2b"}, {"Grade 7 (East)", "grade 7 (east)"}, {"ÉCOLE  Ø", "ecole ø"},
		{"Form\u00a02B", "form 2b"},
	} {
		if got := ClassKey(c.in); got != c.want {
			t.Errorf("ClassKey(%q) = %q, want %q", c.in, got, c.want)
		}
		if slow := Fold(strings.Join(strings.Fields(c.in), " ")); ClassKey(c.in) != slow {
			t.Errorf("ClassKey(%q) = %q, Fold gives %q", c.in, ClassKey(c.in), slow)
		}
	}
}
