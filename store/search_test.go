package store

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// errorsOrDup turns a duplicate key error into ErrDuplicateRegNo.
func errorsOrDup(err error) error {
	if mongo.IsDuplicateKeyError(err) {
		return ErrDuplicateRegNo
	}
	return err
}

func TestFold(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Zoë", "zoe"},
		{"Ñúñez", "nunez"},
		{"ÅSTRÖM", "astrom"},
		{"Nyang'au-Ọlá", "nyang'au-ola"},
		{"Ørsted", "ørsted"}, // does not decompose: kept, lower-cased
		{"a\x00b\tc", "abc"},
		{"bad\xff\xfeutf8", "badutf8"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Fold(tt.in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFoldASCIIIsFold checks the ASCII shortcut against the Unicode
// transforms it skips: every byte below 0x80 alone and in names.
func TestFoldASCIIIsFold(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "amina", "Amina Otieno", "NBI-000042", "O'Neil-Smith", "a\x00b\tc\x7fd", "  Form  2B ", "X/77"}
	for c := 0; c < utf8.RuneSelf; c++ {
		inputs = append(inputs, string(rune(c)), "Ab"+string(rune(c))+"Z")
	}
	for _, in := range inputs {
		got, ok := foldASCII(in)
		if want := foldUnicode(in); !ok || got != want {
			t.Errorf("foldASCII(%q) = %q, %v; foldUnicode gives %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"Zoë", "bad\xff", "Ørsted"} {
		if _, ok := foldASCII(in); ok {
			t.Errorf("foldASCII(%q) took text that is not ASCII", in)
		}
	}
}

func BenchmarkFold(b *testing.B) {
	for _, in := range []string{"NBI-000042 Amina Kamau", "Zoë Ñúñez"} {
		for _, f := range []struct {
			name string
			fold func(string) string
		}{{"Fold", Fold}, {"transforms only (before the shortcut)", foldUnicode}} {
			b.Run(f.name+"/"+in, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					f.fold(in)
				}
			})
		}
	}
}

func TestCleanQuery(t *testing.T) {
	t.Parallel()
	cut := strings.Repeat("a", 199) + "é" // é is 2 bytes: byte 200 is its middle
	tests := []struct {
		name, in, want string
	}{
		{"NUL", "\x00", ""},
		{"NUL inside", "ami\x00na", "ami na"},
		{"invalid UTF-8", "\xff\xfe", ""},
		{"invalid inside", "Zo\xffë", "Zoë"},
		{"cut mid-rune", cut, strings.Repeat("a", 199)},
		{"spaces", "  Amina  ", "Amina"},
	}
	for _, tt := range tests {
		got := CleanQuery(tt.in, 200)
		if got != tt.want || !utf8.ValidString(got) || len(got) > 200 {
			t.Errorf("%s: CleanQuery(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestSearchAsPeopleExpect(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	mustCreate(t, s, "S001", "Amina", "Otieno")
	mustCreate(t, s, "S002", "Otieno", "Kamau")
	mustCreate(t, s, "S003", "Zoë", "Ñúñez")
	mustCreate(t, s, "S004", "Amina", "Wanjiru")
	mustCreate(t, s, "X/77", "Kofi", "Mensah")
	tests := []struct {
		q    string
		want []string
	}{
		{"Amina Otieno", []string{"S001"}},   // words across fields
		{"otieno amina", []string{"S001"}},   // any order
		{"amina", []string{"S001", "S004"}},  // one word
		{"otieno", []string{"S001", "S002"}}, // in either field
		{"zoe", []string{"S003"}},            // accents do not matter
		{"NUNEZ", []string{"S003"}},          // nor case
		{"Zoë Ñúñez", []string{"S003"}},
		{"s003", []string{"S003"}}, // registration number, any case
		{"x/77", []string{"X/77"}},
		{"amina kamau", nil}, // every word must match
		{"a.ina", nil},       // literal, not a regex
		{"\x00", []string{"S001", "S002", "S003", "S004", "X/77"}},
	}
	for _, tt := range tests {
		pg, err := s.ListStudents(ctx, ListOptions{Query: tt.q})
		if err != nil {
			t.Fatalf("search %q: %v", tt.q, err)
		}
		if got := regNos(pg); !slices.Equal(got, tt.want) || pg.Total != int64(len(tt.want)) {
			t.Errorf("search %q = %v (total %d), want %v", tt.q, got, pg.Total, tt.want)
		}
	}
}

func TestSortIgnoresCaseAndAccents(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	mustCreate(t, s, "b-2", "Émile", "x")
	mustCreate(t, s, "A-1", "zoe", "y")
	mustCreate(t, s, "C-3", "Eve", "z")
	for _, tt := range []struct {
		sort string
		want []string
	}{
		{"", []string{"A-1", "b-2", "C-3"}},
		{"-registration_no", []string{"C-3", "b-2", "A-1"}},
		{"first_name", []string{"b-2", "C-3", "A-1"}}, // Émile, Eve, zoe
		{"-first_name", []string{"A-1", "C-3", "b-2"}},
	} {
		pg, err := s.ListStudents(t.Context(), ListOptions{Sort: tt.sort})
		if err != nil {
			t.Fatal(err)
		}
		if got := regNos(pg); !slices.Equal(got, tt.want) {
			t.Errorf("sort %q = %v, want %v", tt.sort, got, tt.want)
		}
	}
}

func TestImportRegNoCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	mustCreate(t, s, "S001", "Existing", "Student")

	// Within one file.
	_, rowErrs, err := importCSV(t, s, "registration_no,first_name,second_name\nA-1,One,X\na-1,Two,Y\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(rowErrs) != 1 || rowErrs[0].Line != 3 || !strings.Contains(rowErrs[0].Msg, "repeats line 2") {
		t.Fatalf("file with A-1 and a-1: %v, want line 3 repeats line 2", rowErrs)
	}
	// Against the database.
	n, rowErrs, err := importCSV(t, s, "registration_no,first_name,second_name\nN-1,New,Student\ns001,Clash,Case\n")
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || len(rowErrs) != 1 || rowErrs[0].Line != 3 ||
		!strings.Contains(rowErrs[0].Msg, `"s001" already exists as "S001"`) {
		t.Fatalf("import of s001 beside S001 = %d, %v; want line 3 refused, nothing imported", n, rowErrs)
	}
	if c := count(t, s); c != 1 {
		t.Fatalf("%d students after refused imports, want 1", c)
	}
}

// Search in one tenant's store never returns another tenant's students,
// whatever the query.
func TestSearchCrossTenant(t *testing.T) {
	t.Parallel()
	a := newStore(t, Options{})
	b := newStore(t, Options{})
	mustCreate(t, a, "A-1", "Amina", "Otieno")
	mustCreate(t, b, "B-1", "Amina", "Otieno")
	mustCreate(t, b, "a-1", "Zoë", "Bee")
	for _, q := range []string{"", "amina", "Amina Otieno", "a-1", "zoe", ".*", "\x00"} {
		pg, err := a.ListStudents(t.Context(), ListOptions{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range pg.Students {
			if st.RegistrationNo != "A-1" {
				t.Errorf("tenant A's search %q returned %+v", q, st)
			}
		}
	}
	if _, err := a.CreateStudent(t.Context(), StudentInput{RegistrationNo: "B-1", FirstName: "Same", SecondName: "RegNo"}); err != nil {
		t.Errorf("B-1 exists in tenant B only; creating it in A: %v", err)
	}
}
