package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseStudentsCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		rows      []StudentInput
		lines     []int
		rowErrs   []RowError // Msg compared by prefix
		fileError string     // substring; "" means no error
	}{
		{name: "plain", in: "registration_no,first_name,second_name\nA-1,Amina,Odhiambo\nB-2,Kofi,Mensah\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}, {RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "Mensah"}}, lines: []int{2, 3}},
		{name: "BOM, CRLF, blank lines, no final newline",
			in:   "\uFEFFregistration_no,first_name,second_name\r\n\r\nA-1,Amina,Odhiambo\r\n\r\n\r\nB-2,Kofi,Mensah",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}, {RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "Mensah"}}, lines: []int{3, 6}},
		{name: "columns in any order, header case and spaces",
			in:   " Second_Name ,FIRST_NAME,registration_no\nOdhiambo,Amina,A-1\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}}, lines: []int{2}},
		{name: "quoted fields and trimming",
			in:   "registration_no,first_name,second_name\n\" A-1 \",\"Amina, Jr\",\"O\"\"Brien\"\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina, Jr", SecondName: `O"Brien`}}, lines: []int{2}},
		{name: "bad rows named by field",
			in:   "registration_no,first_name,second_name\nA 1,Amina,Odhiambo\nB-2,,Mensah\nC-3,Ama\nD-4,Ok,Fine\n",
			rows: []StudentInput{{RegistrationNo: "D-4", FirstName: "Ok", SecondName: "Fine"}}, lines: []int{5},
			rowErrs: []RowError{{Line: 2, Msg: "registration_no: "}, {Line: 3, Msg: "first_name: "}, {Line: 4, Msg: "expected 3 fields"}}},
		{name: "reg no repeated within the file",
			in:   "registration_no,first_name,second_name\nA-1,Amina,Odhiambo\nA-1,Other,Person\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}}, lines: []int{2},
			rowErrs: []RowError{{Line: 3, Msg: `registration_no: "A-1" repeats line 2`}}},
		{name: "multi-line quoted field is refused, lines stay right",
			in:   "registration_no,first_name,second_name\nA-1,\"Two\nLines\",X\nB-2,Kofi,Mensah\n",
			rows: []StudentInput{{RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "Mensah"}}, lines: []int{4},
			rowErrs: []RowError{{Line: 2, Msg: "first_name: "}}},
		{name: "syntax error", in: "registration_no,first_name,second_name\nA-1,Am\"ina,X\n",
			rowErrs: []RowError{{Line: 2, Msg: "not valid CSV"}}},
		{name: "header only", in: "registration_no,first_name,second_name\n"},
		{name: "empty file", in: "", fileError: "empty"},
		{name: "BOM only", in: "\uFEFF", fileError: "empty"},
		{name: "no header", in: "A-1,Amina,Odhiambo\n", fileError: "must be the header"},
		{name: "missing column", in: "registration_no,first_name\nA-1,Amina\n", fileError: `no "second_name"`},
		{name: "other columns ignored", in: "Class,registration_no,first_name,second_name,email\n4B,A-1,Amina,Odhiambo,a@b.c\n",
			rows: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}}, lines: []int{2}},
		{name: "other columns count in a row's fields", in: "registration_no,first_name,second_name,Class\nA-1,Amina,Odhiambo\n",
			rowErrs: []RowError{{Line: 2, Msg: "expected 4 fields"}}},
		{name: "column twice", in: "registration_no,first_name,first_name\n", fileError: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, lines, rowErrs, err := ParseStudentsCSVLines(strings.NewReader(tt.in))
			if tt.fileError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fileError) {
					t.Fatalf("err = %v, want one containing %q", err, tt.fileError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.rows) || !slices.Equal(lines, tt.lines) {
				t.Errorf("rows %v lines %v, want %v %v", rows, lines, tt.rows, tt.lines)
			}
			if len(rowErrs) != len(tt.rowErrs) {
				t.Fatalf("row errors %v, want %v", rowErrs, tt.rowErrs)
			}
			for i, re := range rowErrs {
				if re.Line != tt.rowErrs[i].Line || !strings.HasPrefix(re.Msg, tt.rowErrs[i].Msg) {
					t.Errorf("row error %d = %v, want line %d, message starting %q", i, re, tt.rowErrs[i].Line, tt.rowErrs[i].Msg)
				}
			}
			// ParseStudentsCSV gives the same rows and errors.
			rows2, rowErrs2, err := ParseStudentsCSV(strings.NewReader(tt.in))
			if err != nil || !slices.Equal(rows2, rows) || !slices.Equal(rowErrs2, rowErrs) {
				t.Errorf("ParseStudentsCSV differs from ParseStudentsCSVLines")
			}
		})
	}
}

func TestParseStudentsCSVRowCap(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("registration_no,first_name,second_name\n")
	for i := range MaxImportRows {
		fmt.Fprintf(&b, "R%d,A,B\n", i)
	}
	rows, _, err := ParseStudentsCSV(strings.NewReader(b.String()))
	if err != nil || len(rows) != MaxImportRows {
		t.Fatalf("%d rows: got %d rows, err %v", MaxImportRows, len(rows), err)
	}
	b.WriteString("ONE-MORE,A,B\n")
	if _, _, err := ParseStudentsCSV(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "more than 100000 rows") {
		t.Fatalf("%d rows: err = %v, want the row cap", MaxImportRows+1, err)
	}
}

func importCSV(t *testing.T, s *Store, csv string) (int, []RowError, error) {
	t.Helper()
	rows, lines, rowErrs, err := ParseStudentsCSVLines(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if len(rowErrs) > 0 {
		return 0, rowErrs, nil
	}
	return s.ImportStudents(t.Context(), rows, lines)
}

func TestImportStudents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	mustCreate(t, s, "OLD-1", "Existing", "Student")

	n, rowErrs, err := importCSV(t, s, "registration_no,first_name,second_name\n\nN-1,Amina,Odhiambo\nOLD-1,Dup,InDB\nN-2,Kofi,Mensah\n")
	if err != nil || n != 0 || len(rowErrs) != 1 || rowErrs[0].Line != 4 || !strings.Contains(rowErrs[0].Msg, "already exists") {
		t.Fatalf("import with a reg no in the database = %d, %v, %v", n, rowErrs, err)
	}
	if c := count(t, s); c != 1 {
		t.Fatalf("%d students after a refused import, want 1", c)
	}

	// Rows are validated again by ImportStudents itself; lines default to i+2.
	n, rowErrs, err = s.ImportStudents(ctx, []StudentInput{{RegistrationNo: "G-1", FirstName: "Good", SecondName: "Row"}, {RegistrationNo: "", FirstName: "Bad", SecondName: "Row"}, {RegistrationNo: "G-1", FirstName: "Dup", SecondName: "Row"}}, nil)
	if err != nil || n != 0 || len(rowErrs) != 2 || rowErrs[0].Line != 3 || rowErrs[1].Line != 4 {
		t.Fatalf("import of unchecked rows = %d, %v, %v", n, rowErrs, err)
	}
	if c := count(t, s); c != 1 {
		t.Fatalf("%d students after a refused import, want 1", c)
	}

	n, rowErrs, err = importCSV(t, s, "registration_no,first_name,second_name\nN-1,Amina,Odhiambo\nN-2,Kofi,Mensah\nN-3,Ama,Owusu\n")
	if err != nil || n != 3 || rowErrs != nil {
		t.Fatalf("good import = %d, %v, %v", n, rowErrs, err)
	}
	p, _ := s.ListStudents(ctx, ListOptions{Sort: "id"})
	if got := regNos(p); !slices.Equal(got, []string{"OLD-1", "N-1", "N-2", "N-3"}) {
		t.Fatalf("after import: %v", got)
	}
	for i, st := range p.Students {
		if st.ID != int64(i+1) {
			t.Fatalf("ids not consecutive: %v", p.Students)
		}
	}
	if st := mustCreate(t, s, "AFTER", "Next", "Id"); st.ID != 5 {
		t.Fatalf("id after import = %d, want 5", st.ID)
	}
	if n, rowErrs, err := s.ImportStudents(ctx, nil, nil); n != 0 || rowErrs != nil || err != nil {
		t.Fatalf("empty import = %d, %v, %v", n, rowErrs, err)
	}
}

func TestImportStudentsBadRowImportsNone(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	rows, lines, rowErrs, err := ParseStudentsCSVLines(strings.NewReader(
		"registration_no,first_name,second_name\nA-1,Amina,Odhiambo\nB-2,,Mensah\n"))
	if err != nil || len(rowErrs) != 1 {
		t.Fatalf("parse: %v %v", rowErrs, err)
	}
	// Even if a caller imported the valid rows of a file with bad rows, the
	// bad row is caught: pass it on unvalidated.
	rows = append(rows, StudentInput{RegistrationNo: "B-2", FirstName: "", SecondName: "Mensah"})
	lines = append(lines, 3)
	n, rowErrs, err := s.ImportStudents(t.Context(), rows, lines)
	if err != nil || n != 0 || len(rowErrs) != 1 || rowErrs[0].Line != 3 || !strings.HasPrefix(rowErrs[0].Msg, "first_name:") {
		t.Fatalf("import = %d, %v, %v", n, rowErrs, err)
	}
	if c := count(t, s); c != 0 {
		t.Fatalf("%d students imported from a file with a bad row", c)
	}
}

// If another writer takes a registration number while an import is under
// way, the import fails and undoes what it had inserted.
func TestImportStudentsAllOrNothingOnRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	s.insertBatch = 2
	s.beforeInsert = func(batch int) {
		if batch == 2 { // batches 0 and 1 are in; R-5 is in batch 2
			mustCreate(t, s, "R-5", "Racing", "Writer")
		}
	}
	var rows []StudentInput
	for i := range 7 {
		rows = append(rows, StudentInput{RegistrationNo: fmt.Sprintf("R-%d", i), FirstName: "N", SecondName: "N"})
	}
	n, rowErrs, err := s.ImportStudents(ctx, rows, nil)
	if err == nil || n != 0 || rowErrs != nil {
		t.Fatalf("racing import = %d, %v, %v; want an error", n, rowErrs, err)
	}
	if !errors.Is(err, ErrDuplicateRegNo) {
		t.Errorf("error %v does not match ErrDuplicateRegNo", err)
	}
	p, _ := s.ListStudents(ctx, ListOptions{})
	if got := regNos(p); !slices.Equal(got, []string{"R-5"}) {
		t.Fatalf("after the failed import: %v, want only the racing writer's R-5", got)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := newStore(t, Options{})
	for _, in := range []StudentInput{
		{RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "Mensah"},
		{RegistrationNo: "A-1", FirstName: "Amina, \"Ami\"", SecondName: "O'Dhiambo"},
		{RegistrationNo: "C/3.x", FirstName: "<b>Zoë</b>", SecondName: "=HYPERLINK(\"x\")"},
		{RegistrationNo: "-4", FirstName: "+1", SecondName: "@sum"},
	} {
		mustCreate(t, src, in.RegistrationNo, in.FirstName, in.SecondName)
	}
	var buf bytes.Buffer
	if err := src.ExportStudents(ctx, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	exported := buf.String()
	if !strings.HasPrefix(exported, "\uFEFFregistration_no,first_name,second_name\n'-4,'+1,'@sum\n") {
		t.Fatalf("export does not start with the header and the lowest reg no:\n%s", exported)
	}

	dst := newStore(t, Options{})
	n, rowErrs, err := importCSV(t, dst, exported)
	if err != nil || rowErrs != nil || n != 4 {
		t.Fatalf("import of the export = %d, %v, %v", n, rowErrs, err)
	}
	var again bytes.Buffer
	if err := dst.ExportStudents(ctx, &again, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if again.String() != exported {
		t.Fatalf("round trip changed the data:\n%s\nvs\n%s", exported, again.String())
	}
}

func TestExportEmpty(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	var buf bytes.Buffer
	if err := s.ExportStudents(t.Context(), &buf, ExportOptions{NoBOM: true}); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "registration_no,first_name,second_name\n" {
		t.Fatalf("empty export = %q", buf.String())
	}
}
