package store

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// Files as spreadsheets save them: delimiters, header names, encodings.
func TestParseStudentsFileSpreadsheets(t *testing.T) {
	t.Parallel()
	win1252, err := charmap.Windows1252.NewEncoder().String("Reg No;First Name;Surname\r\nZ-1;Zoë;Müller\r\nZ-2;François;Nuñez\r\n")
	if err != nil {
		t.Fatal(err)
	}
	utf16 := "\xFF\xFE"
	for _, c := range "registration_no\tfirst_name\tsecond_name\r\nZ-1\tZoë\t伊藤\r\n" {
		utf16 += string([]byte{byte(c), byte(c >> 8)})
	}
	tests := []struct {
		name      string
		in        string
		rows      []StudentInput
		enc       string
		delim     rune
		fileError string
	}{
		{name: "semicolons, BOM, aliases", in: "\uFEFFRegistration No;Given name;Last name\nZ-1;Zoë;伊藤\n",
			rows: []StudentInput{{RegistrationNo: "Z-1", FirstName: "Zoë", SecondName: "伊藤"}}, enc: EncodingUTF8, delim: ';'},
		{name: "tabs, odd header spelling", in: "REG_NO\tfirst name\tSecond-Name\nZ-1\tA\tB\n",
			rows: []StudentInput{{RegistrationNo: "Z-1", FirstName: "A", SecondName: "B"}}, enc: EncodingUTF8, delim: '\t'},
		{name: "commas inside quotes do not outvote semicolons", in: "\"Reg, No\";first_name;second_name\n",
			fileError: `"Reg, No"`},
		{name: "semicolon in a comma file's quoted field", in: "regno,firstname,surname\nZ-1,\"A;B\",C\n",
			rows: []StudentInput{{RegistrationNo: "Z-1", FirstName: "A;B", SecondName: "C"}}, enc: EncodingUTF8, delim: ','},
		{name: "Windows-1252", in: win1252,
			rows: []StudentInput{{RegistrationNo: "Z-1", FirstName: "Zoë", SecondName: "Müller"}, {RegistrationNo: "Z-2", FirstName: "François", SecondName: "Nuñez"}}, enc: EncodingWindows1252, delim: ';'},
		{name: "UTF-16 with BOM", in: utf16, rows: []StudentInput{{RegistrationNo: "Z-1", FirstName: "Zoë", SecondName: "伊藤"}}, enc: EncodingUTF16, delim: '\t'},
		{name: "formula guard taken off", in: "registration_no,first_name,second_name\n'-4,\"'=HYPERLINK(\"\"x\"\")\",''@x\n",
			rows: []StudentInput{{RegistrationNo: "-4", FirstName: `=HYPERLINK("x")`, SecondName: "'@x"}}, enc: EncodingUTF8, delim: ','},
		{name: "a plain leading quote is kept", in: "registration_no,first_name,second_name\nA-1,'Ami,O'Brien\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "'Ami", SecondName: "O'Brien"}}, enc: EncodingUTF8, delim: ','},
		{name: "a missing column names the aliases and the columns not understood", in: "registration_no,first_name,Nom\n",
			fileError: `no "second_name" column (columns not understood: "Nom"); expected registration_no,first_name,second_name in any order (other names accepted: Registration No, Reg No`},
		{name: "two aliases of one column", in: "surname,last name,regno\n", fileError: "twice"},
		{name: "BOM, then bytes that are not UTF-8", in: "\uFEFFregistration_no,first_name,second_name\nA-1,Zo\xEB,X\n", fileError: "line 2 is not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseStudentsFile(strings.NewReader(tt.in))
			if tt.fileError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fileError) {
					t.Fatalf("err = %v, want one containing %q", err, tt.fileError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Errors) > 0 || !slices.Equal(p.Rows, tt.rows) {
				t.Fatalf("rows %q errors %v, want %q", p.Rows, p.Errors, tt.rows)
			}
			if p.Encoding != tt.enc || p.Delimiter != tt.delim {
				t.Errorf("encoding %s delimiter %q, want %s %q", p.Encoding, p.Delimiter, tt.enc, tt.delim)
			}
		})
	}
}

func TestGuardCellRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "=1+1", "+1", "-4", "@sum", "\tx", "\rx", "'=x", "''=x", "'", "'plain", "a=b"} {
		g := guardCell(s)
		if got := unguardCell(g); got != s {
			t.Errorf("unguardCell(guardCell(%q)) = %q", s, got)
		}
		if g != "" && formulaStart(g[0]) {
			t.Errorf("guardCell(%q) = %q still starts a formula", s, g)
		}
	}
}

func TestExportOptions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	mustCreate(t, s, "A-1", "Amina", "Odhiambo")
	mustCreate(t, s, "B-2", "Kofi", "Mensah")
	var buf bytes.Buffer
	if err := s.ExportStudents(ctx, &buf, ExportOptions{Query: "kofi", NoBOM: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "registration_no,first_name,second_name\nB-2,Kofi,Mensah\n"; got != want {
		t.Fatalf("export of a search = %q, want %q", got, want)
	}
	buf.Reset()
	if err := s.ExportStudents(ctx, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "\uFEFFregistration_no,") || strings.Count(buf.String(), "\n") != 3 {
		t.Fatalf("default export = %q, want a BOM and every student", buf.String())
	}
}

func planCSV(t *testing.T, s *Store, csv string, mode ImportMode) ImportPlan {
	t.Helper()
	p, err := ParseStudentsFile(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.PlanImport(t.Context(), p.Rows, p.Lines, p.Errors, mode)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// The plan finds everything ApplyImport would trip on: errors in the file
// and duplicates of students in the database, with the same counts.
func TestPlanImportAdd(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	mustCreate(t, s, "OLD-1", "Existing", "Student")
	plan := planCSV(t, s, "registration_no,first_name,second_name\nN-1,Amina,Odhiambo\nOLD-1,Dup,InDB\nN-2,,Mensah\nn-1,Again,Lower\nN-3,Kofi,Mensah\n", ImportAdd)
	var lines []int
	for _, e := range plan.Errors {
		lines = append(lines, e.Line)
	}
	if !slices.Equal(lines, []int{3, 4, 5}) || plan.Valid() != 2 || len(plan.New) != 2 {
		t.Fatalf("plan: errors %v, %d valid, %d new; want errors on lines 3, 4, 5 and 2 new", plan.Errors, plan.Valid(), len(plan.New))
	}
	if !strings.Contains(plan.Errors[0].Msg, "already exists") || !strings.Contains(plan.Errors[2].Msg, "repeats line 2") {
		t.Errorf("messages: %v", plan.Errors)
	}
	if _, err := s.ApplyImport(t.Context(), plan, CommandLine); err == nil {
		t.Fatal("ApplyImport of a plan with errors succeeded")
	}
	if c := count(t, s); c != 1 {
		t.Fatalf("%d students after a refused import, want 1", c)
	}
}

func TestPlanImportUpdate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	a := mustCreate(t, s, "A-1", "Amina", "Odhiambo")
	mustCreate(t, s, "B-2", "Kofi", "Mensah")
	mustCreate(t, s, "C-3", "Untouched", "ByFile")
	csv := "registration_no,first_name,second_name\nA-1,Amina,Otieno\nB-2,Kofi,Mensah\nD-4,New,Student\n"
	plan := planCSV(t, s, csv, ImportUpdate)
	if len(plan.Errors) != 0 || len(plan.New) != 1 || len(plan.Changed) != 1 || plan.Unchanged != 1 {
		t.Fatalf("plan = %+v; want 1 new, 1 changed, 1 unchanged", plan)
	}
	if c := plan.Changed[0]; c.Current.ID != a.ID || !slices.Equal(c.ChangedFields(), []string{"second_name"}) {
		t.Fatalf("change = %+v, fields %v", c, c.ChangedFields())
	}
	if c := count(t, s); c != 3 {
		t.Fatalf("planning wrote: %d students", c)
	}
	res, err := s.ApplyImport(ctx, plan, CommandLine)
	if err != nil || res != (ImportResult{Added: 1, Updated: 1}) {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	var buf bytes.Buffer
	if err := s.ExportStudents(ctx, &buf, ExportOptions{NoBOM: true}); err != nil {
		t.Fatal(err)
	}
	want := "registration_no,first_name,second_name\nA-1,Amina,Otieno\nB-2,Kofi,Mensah\nC-3,Untouched,ByFile\nD-4,New,Student\n"
	if buf.String() != want {
		t.Fatalf("after update import:\n%s\nwant\n%s", buf.String(), want)
	}
	// The same file again changes nothing.
	if again := planCSV(t, s, csv, ImportUpdate); again.Unchanged != 3 || again.Valid() != 3 {
		t.Fatalf("second plan = %+v, want 3 unchanged", again)
	}
}

// A student edited between the preview and the confirmation is not
// overwritten: the import fails and leaves nothing of itself behind.
func TestApplyImportStale(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	a := mustCreate(t, s, "A-1", "Amina", "Odhiambo")
	b := mustCreate(t, s, "B-2", "Kofi", "Mensah")
	plan := planCSV(t, s, "registration_no,first_name,second_name\nA-1,Amina,Otieno\nB-2,Kofi,Owusu\nN-1,New,Row\n", ImportUpdate)
	if _, err := s.UpdateStudent(ctx, b.ID, StudentInput{RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "EditedMeanwhile"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyImport(ctx, plan, CommandLine); !errors.Is(err, ErrImportStale) {
		t.Fatalf("apply of a stale plan: %v, want ErrImportStale", err)
	}
	if got, _ := s.Student(ctx, a.ID); got.SecondName != "Odhiambo" {
		t.Errorf("A-1 = %+v: the first update was not undone", got)
	}
	if got, _ := s.Student(ctx, b.ID); got.SecondName != "EditedMeanwhile" {
		t.Errorf("B-2 = %+v: the concurrent edit was lost", got)
	}
	if c := count(t, s); c != 2 {
		t.Errorf("%d students, want 2: the new row was not undone", c)
	}
	if fresh := planCSV(t, s, "registration_no,first_name,second_name\nA-1,Amina,Otieno\nB-2,Kofi,Owusu\nN-1,New,Row\n", ImportUpdate); fresh.Fingerprint() == plan.Fingerprint() {
		t.Error("a plan made after the edit has the stale plan's fingerprint")
	}
}

func TestNamesOfInvisibleCharactersRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"\u202E", "\u200B\u200B", "\u200B \u2060", "\uFEFF", "\u3164", "\u00A0\u200D", "\u0301"} {
		if _, fe := NormalizeStudent(StudentInput{RegistrationNo: "A-1", FirstName: name, SecondName: "Fine"}); fe["first_name"] == "" || !strings.Contains(fe["first_name"], "invisible") {
			t.Errorf("first name %+q: errors %v, want an invisible-characters error", name, fe)
		}
	}
	for _, name := range []string{"Zoë", "伊藤", "O'Brien", "\u200BAmina", "A\u0301"} {
		if _, fe := NormalizeStudent(StudentInput{RegistrationNo: "A-1", FirstName: name, SecondName: "Fine"}); fe != nil {
			t.Errorf("first name %+q refused: %v", name, fe)
		}
	}
}

// A tenant's setting lives in its database: another tenant's is untouched.
func TestSettingsPerTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := newStore(t, Options{}), newStore(t, Options{})
	if st, err := a.Settings(ctx); err != nil || st.PublicListStaffOnly {
		t.Fatalf("default settings = %+v, %v; want a public list", st, err)
	}
	for _, v := range []bool{true, true, false, true} {
		if err := a.SetPublicListStaffOnly(ctx, v); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.Settings(ctx); st.PublicListStaffOnly != v {
			t.Fatalf("after setting %v: %+v", v, st)
		}
	}
	if st, _ := b.Settings(ctx); st.PublicListStaffOnly {
		t.Fatal("tenant A's staff-only setting changed tenant B")
	}
}
