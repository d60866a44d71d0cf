package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNormalizeStudent(t *testing.T) {
	t.Parallel()
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name      string
		in        StudentInput
		want      StudentInput
		badFields []string
	}{
		{"valid", StudentInput{RegistrationNo: "REG/2024-01.a", FirstName: "Amina", SecondName: "Odhiambo"}, StudentInput{RegistrationNo: "REG/2024-01.a", FirstName: "Amina", SecondName: "Odhiambo"}, nil},
		{"trimmed", StudentInput{RegistrationNo: "  R1\t", FirstName: " Kofi ", SecondName: "\u00a0Mensah\n"}, StudentInput{RegistrationNo: "R1", FirstName: "Kofi", SecondName: "Mensah"}, nil},
		{"unicode names", StudentInput{RegistrationNo: "R2", FirstName: "Zoë", SecondName: "Nyang'au-Ọlá"}, StudentInput{RegistrationNo: "R2", FirstName: "Zoë", SecondName: "Nyang'au-Ọlá"}, nil},
		{"html kept verbatim", StudentInput{RegistrationNo: "R3", FirstName: "<b>x</b>", SecondName: `"a"&'b'`}, StudentInput{RegistrationNo: "R3", FirstName: "<b>x</b>", SecondName: `"a"&'b'`}, nil},
		{"all empty", StudentInput{RegistrationNo: " ", FirstName: "", SecondName: "\t"}, StudentInput{}, []string{"first_name", "registration_no", "second_name"}},
		{"reg no 64", StudentInput{RegistrationNo: long(64, "9"), FirstName: "a", SecondName: "b"}, StudentInput{RegistrationNo: long(64, "9"), FirstName: "a", SecondName: "b"}, nil},
		{"reg no 65", StudentInput{RegistrationNo: long(65, "9"), FirstName: "a", SecondName: "b"}, StudentInput{}, []string{"registration_no"}},
		{"reg no space", StudentInput{RegistrationNo: "R 1", FirstName: "a", SecondName: "b"}, StudentInput{}, []string{"registration_no"}},
		{"reg no underscore", StudentInput{RegistrationNo: "R_1", FirstName: "a", SecondName: "b"}, StudentInput{}, []string{"registration_no"}},
		{"reg no non-ascii", StudentInput{RegistrationNo: "RÉG1", FirstName: "a", SecondName: "b"}, StudentInput{}, []string{"registration_no"}},
		{"reg no formula", StudentInput{RegistrationNo: "=1+1", FirstName: "a", SecondName: "b"}, StudentInput{}, []string{"registration_no"}},
		{"name 255 runes", StudentInput{RegistrationNo: "R", FirstName: long(255, "é"), SecondName: "b"}, StudentInput{RegistrationNo: "R", FirstName: long(255, "é"), SecondName: "b"}, nil},
		{"name 256 runes", StudentInput{RegistrationNo: "R", FirstName: long(256, "é"), SecondName: "b"}, StudentInput{}, []string{"first_name"}},
		{"name newline", StudentInput{RegistrationNo: "R", FirstName: "a\nb", SecondName: "b"}, StudentInput{}, []string{"first_name"}},
		{"name tab", StudentInput{RegistrationNo: "R", FirstName: "a", SecondName: "b\tc"}, StudentInput{}, []string{"second_name"}},
		{"name NUL", StudentInput{RegistrationNo: "R", FirstName: "a\x00", SecondName: "b"}, StudentInput{}, []string{"first_name"}},
		{"name bad utf8", StudentInput{RegistrationNo: "R", FirstName: "a\xff", SecondName: "b"}, StudentInput{}, []string{"first_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fe := NormalizeStudent(tt.in)
			var bad []string
			for f, msg := range fe {
				if msg == "" {
					t.Errorf("field %s has an empty message", f)
				}
				bad = append(bad, f)
			}
			slices.Sort(bad)
			if !slices.Equal(bad, tt.badFields) {
				t.Fatalf("bad fields %v, want %v (%v)", bad, tt.badFields, fe)
			}
			if fe == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFieldErrorsError(t *testing.T) {
	t.Parallel()
	got := FieldErrors{"second_name": "is required", "first_name": "is required"}.Error()
	want := "invalid input: first_name: is required; second_name: is required"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestStudentCRUD(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := newClock()
	s := newStore(t, Options{Now: clk.Now})

	a := mustCreate(t, s, " A-1 ", " Amina ", "Odhiambo")
	b := mustCreate(t, s, "B-2", "Kofi", "Mensah")
	if a.ID != 1 || b.ID != 2 {
		t.Fatalf("ids %d, %d; want 1, 2 (small sequential ids)", a.ID, b.ID)
	}
	if a.RegistrationNo != "A-1" || a.FirstName != "Amina" || !a.CreatedAt.Equal(clk.Now()) || !a.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("created %+v", a)
	}
	got, err := s.Student(ctx, a.ID)
	if err != nil || got != a {
		t.Fatalf("Student(%d) = %+v, %v; want %+v", a.ID, got, err, a)
	}

	clk.Advance(time.Hour)
	up, err := s.UpdateStudent(ctx, a.ID, StudentInput{RegistrationNo: "A-1b", FirstName: "Amina", SecondName: "Wanjiru"})
	if err != nil {
		t.Fatal(err)
	}
	if up.RegistrationNo != "A-1b" || up.SecondName != "Wanjiru" || !up.CreatedAt.Equal(a.CreatedAt) || !up.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("updated %+v", up)
	}
	// Updating to its own registration number is not a duplicate.
	if _, err := s.UpdateStudent(ctx, a.ID, StudentInput{RegistrationNo: "A-1b", FirstName: "Amina", SecondName: "W."}); err != nil {
		t.Fatalf("update keeping the reg no: %v", err)
	}

	var fe FieldErrors
	if _, err := s.UpdateStudent(ctx, a.ID, StudentInput{RegistrationNo: "", FirstName: "x", SecondName: "y"}); !errors.As(err, &fe) || fe["registration_no"] == "" {
		t.Fatalf("update with empty reg no: %v", err)
	}
	if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: "C", FirstName: "", SecondName: "y"}); !errors.As(err, &fe) || fe["first_name"] == "" {
		t.Fatalf("create with empty first name: %v", err)
	}

	for name, err := range map[string]error{
		"Student": func() error { _, err := s.Student(ctx, 99); return err }(),
		"UpdateStudent": func() error {
			_, err := s.UpdateStudent(ctx, 99, StudentInput{RegistrationNo: "Z", FirstName: "z", SecondName: "z"})
			return err
		}(),
		"DeleteStudent": s.DeleteStudent(ctx, 99),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(unknown id) = %v, want ErrNotFound", name, err)
		}
	}

	if err := s.DeleteStudent(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Student(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted student still found: %v", err)
	}
	c := mustCreate(t, s, "C-3", "Ama", "Owusu")
	n, err := s.DeleteStudents(ctx, []int64{b.ID, c.ID, 12345}, CommandLine)
	if err != nil || n != 2 {
		t.Fatalf("DeleteStudents = %d, %v; want 2", n, err)
	}
	if n, err := s.DeleteStudents(ctx, nil, CommandLine); err != nil || n != 0 {
		t.Fatalf("DeleteStudents(nil) = %d, %v", n, err)
	}
	if count(t, s) != 0 {
		t.Fatal("students left")
	}
}

func TestDuplicateRegNo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	a := mustCreate(t, s, "R-1", "Amina", "Odhiambo")
	b := mustCreate(t, s, "R-2", "Kofi", "Mensah")

	if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: " R-1 ", FirstName: "Other", SecondName: "Person"}); !errors.Is(err, ErrDuplicateRegNo) {
		t.Fatalf("create duplicate = %v, want ErrDuplicateRegNo", err)
	}
	if _, err := s.UpdateStudent(ctx, b.ID, StudentInput{RegistrationNo: "R-1", FirstName: "Kofi", SecondName: "Changed"}); !errors.Is(err, ErrDuplicateRegNo) {
		t.Fatalf("update to duplicate = %v, want ErrDuplicateRegNo", err)
	}
	if n := count(t, s); n != 2 {
		t.Fatalf("count after duplicates = %d, want 2", n)
	}
	if got, _ := s.Student(ctx, b.ID); got != b {
		t.Fatalf("refused update changed the student: %+v, want %+v", got, b)
	}
	if got, _ := s.Student(ctx, a.ID); got != a {
		t.Fatalf("duplicate changed the original: %+v", got)
	}
	// Registration numbers are unique regardless of case (schema 2), by
	// the pre-check and by the unique index on registration_no_key.
	if _, err := s.CreateStudent(ctx, StudentInput{RegistrationNo: "r-1", FirstName: "Lower", SecondName: "Case"}); !errors.Is(err, ErrDuplicateRegNo) {
		t.Fatalf("create r-1 beside R-1 = %v, want ErrDuplicateRegNo", err)
	}
	if _, err := s.UpdateStudent(ctx, b.ID, StudentInput{RegistrationNo: "r-1", FirstName: "Kofi", SecondName: "Mensah"}); !errors.Is(err, ErrDuplicateRegNo) {
		t.Fatalf("update R-2 to r-1 = %v, want ErrDuplicateRegNo", err)
	}
	if _, err := s.col(colStudents).InsertOne(ctx, newStudentDoc(Student{ID: 999, RegistrationNo: "r-1", FirstName: "Raw", SecondName: "Insert"})); !errors.Is(errorsOrDup(err), ErrDuplicateRegNo) {
		t.Fatalf("raw insert of r-1 beside R-1 = %v, want a duplicate key error", err)
	}
	// Changing the case of one's own registration number is allowed.
	if got, err := s.UpdateStudent(ctx, a.ID, StudentInput{RegistrationNo: "r-1", FirstName: "Amina", SecondName: "Odhiambo"}); err != nil || got.RegistrationNo != "r-1" {
		t.Fatalf("update R-1 to r-1 = %+v, %v", got, err)
	}
}

func TestConcurrentCreateSameRegNo(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.CreateStudent(t.Context(), StudentInput{RegistrationNo: "SAME", FirstName: "Racer", SecondName: fmt.Sprint(i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrDuplicateRegNo):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || count(t, s) != 1 {
		t.Fatalf("%d creates succeeded, %d students; want 1, 1", ok, count(t, s))
	}
}

func regNos(p Page) []string {
	var out []string
	for _, st := range p.Students {
		out = append(out, st.RegistrationNo)
	}
	return out
}

func TestListStudents(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	for _, st := range []StudentInput{
		{RegistrationNo: "C-3", FirstName: "Amina", SecondName: "Odhiambo"},
		{RegistrationNo: "A-1", FirstName: "Kofi", SecondName: "Mensah"},
		{RegistrationNo: "B-2", FirstName: "amina", SecondName: "Zulu"},
		{RegistrationNo: "E-5", FirstName: "Zanele", SecondName: "Amin"},
		{RegistrationNo: "D-4", FirstName: "Kofi", SecondName: "Boateng"},
	} {
		mustCreate(t, s, st.RegistrationNo, st.FirstName, st.SecondName)
	}
	tests := []struct {
		name  string
		opts  ListOptions
		want  []string
		total int64
		page  int
		pages int
	}{
		{"default sort by reg no", ListOptions{}, []string{"A-1", "B-2", "C-3", "D-4", "E-5"}, 5, 1, 1},
		{"descending reg no", ListOptions{Sort: "-registration_no"}, []string{"E-5", "D-4", "C-3", "B-2", "A-1"}, 5, 1, 1},
		// Folded order (schema 2): "amina" and "Amina" tie, broken by id.
		{"first name, ties by id", ListOptions{Sort: "first_name"}, []string{"C-3", "B-2", "A-1", "D-4", "E-5"}, 5, 1, 1},
		{"first name desc, ties by id desc", ListOptions{Sort: "-first_name"}, []string{"E-5", "D-4", "A-1", "B-2", "C-3"}, 5, 1, 1},
		{"second name desc", ListOptions{Sort: "-second_name"}, []string{"B-2", "C-3", "A-1", "D-4", "E-5"}, 5, 1, 1},
		{"by id", ListOptions{Sort: "id"}, []string{"C-3", "A-1", "B-2", "E-5", "D-4"}, 5, 1, 1},
		{"by id desc", ListOptions{Sort: "-id"}, []string{"D-4", "E-5", "B-2", "A-1", "C-3"}, 5, 1, 1},
		{"unknown sort falls back", ListOptions{Sort: "password_hash"}, []string{"A-1", "B-2", "C-3", "D-4", "E-5"}, 5, 1, 1},
		{"search case-insensitive over names", ListOptions{Query: "AMIN"}, []string{"B-2", "C-3", "E-5"}, 3, 1, 1},
		{"search reg no", ListOptions{Query: "d-"}, []string{"D-4"}, 1, 1, 1},
		{"search trimmed", ListOptions{Query: "  kofi "}, []string{"A-1", "D-4"}, 2, 1, 1},
		{"search no match", ListOptions{Query: "nobody"}, []string{}, 0, 1, 1},
		{"page 1 of 3", ListOptions{PerPage: 2}, []string{"A-1", "B-2"}, 5, 1, 3},
		{"page 2 of 3", ListOptions{PerPage: 2, Page: 2}, []string{"C-3", "D-4"}, 5, 2, 3},
		{"page 3 of 3", ListOptions{PerPage: 2, Page: 3}, []string{"E-5"}, 5, 3, 3},
		{"page past the end gives the last", ListOptions{PerPage: 2, Page: 9}, []string{"E-5"}, 5, 3, 3},
		{"page 0 is 1", ListOptions{PerPage: 2, Page: -1}, []string{"A-1", "B-2"}, 5, 1, 3},
		{"search and page", ListOptions{Query: "amin", PerPage: 2, Page: 2, Sort: "-registration_no"}, []string{"B-2"}, 3, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.ListStudents(t.Context(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := regNos(p); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("students %v, want %v", got, tt.want)
			}
			if p.Total != tt.total || p.Page != tt.page || p.Pages != tt.pages {
				t.Errorf("total/page/pages = %d/%d/%d, want %d/%d/%d", p.Total, p.Page, p.Pages, tt.total, tt.page, tt.pages)
			}
		})
	}
}

func TestListStudentsPerPageLimits(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	for _, tt := range []struct{ in, want int }{{0, DefaultPerPage}, {-3, DefaultPerPage}, {10, 10}, {10000, MaxPerPage}} {
		p, err := s.ListStudents(t.Context(), ListOptions{PerPage: tt.in})
		if err != nil {
			t.Fatal(err)
		}
		if p.PerPage != tt.want || p.Students == nil {
			t.Errorf("PerPage %d → %d (students %v), want %d and a non-nil slice", tt.in, p.PerPage, p.Students, tt.want)
		}
	}
}

func TestSearchIsLiteral(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	mustCreate(t, s, "P-1", "Ann (Jr)", "O'Brien")
	mustCreate(t, s, "P-2", "A.*", "Plain")
	mustCreate(t, s, "P-3", "Abc", "Plain")
	mustCreate(t, s, "P-4", "x[y]+z", "back\\slash")
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{".*", []string{"P-2"}},
		{"(", []string{"P-1"}},
		{"(jr)", []string{"P-1"}},
		{"a.", []string{"P-2"}},
		{"[y]+", []string{"P-4"}},
		{"\\", []string{"P-4"}},
		{"^A", nil},
		{"$", nil},
		{"o'b", []string{"P-1"}},
	} {
		p, err := s.ListStudents(t.Context(), ListOptions{Query: tt.q})
		if err != nil {
			t.Fatalf("query %q: %v", tt.q, err)
		}
		if got := regNos(p); !slices.Equal(got, tt.want) {
			t.Errorf("query %q found %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestHTMLishNamesStoredVerbatim(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	in := StudentInput{RegistrationNo: "H-1", FirstName: `<script>alert("x")</script>`, SecondName: `O'Neil & <b>Sons</b>`}
	st := mustCreate(t, s, in.RegistrationNo, in.FirstName, in.SecondName)
	got, err := s.Student(t.Context(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstName != in.FirstName || got.SecondName != in.SecondName {
		t.Fatalf("stored %q %q, want them verbatim", got.FirstName, got.SecondName)
	}
}
