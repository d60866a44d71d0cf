package store

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// A class list as schools keep it: aliased headers for the schema 3
// fields, dates in a spreadsheet's forms, a column that is no field.
var classList = [][]string{
	{"Adm No", "First name", "Surname", "Form", "DOB", "Sex", "Parent", "Phone", "E-mail", "Status", "Enrolment date", "Remarks", "House"},
	{"A-1", "Amina", "Odhiambo", "Form 2B", "09/03/2012", "F", "Grace Odhiambo", "+254 712 345 678", "grace@example.org", "Enrolled", "2024-01-08", "Asthma", "Simba"},
	{"A-2", "Kofi", "Mensah", "Form 2B", "2011-11-30", "", "Kwame Mensah", "0244 123 456", "", "", "8 January 2024", "", "Chui"},
	{"A-3", "Zoë", "Ñúñez", "Form 1A", "31.12.2012", "", "", "", "", "left", "", "", ""},
	{"A-4", "Bad", "Date", "Form 1A", "2031-01-01", "", "", "phone?", "", "", "", "", ""},
}

func TestParseClassListCSVAndXLSX(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.WriteAll(classList)
	fromCSV, err := ParseStudents(bytes.NewReader(b.Bytes()), ParseOptions{Name: "list.csv"})
	if err != nil {
		t.Fatal(err)
	}
	fromXLSX, err := ParseStudents(bytes.NewReader(xlsxOf(t, strRows(classList), nil)), ParseOptions{Name: "list.xlsx"})
	if err != nil {
		t.Fatal(err)
	}
	want := []StudentInput{
		{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo", Class: "Form 2B", DateOfBirth: "2012-03-09", Gender: "F",
			GuardianName: "Grace Odhiambo", GuardianPhone: "+254 712 345 678", GuardianEmail: "grace@example.org", Status: "enrolled",
			EnrolledOn: "2024-01-08", Notes: "Asthma"},
		{RegistrationNo: "A-2", FirstName: "Kofi", SecondName: "Mensah", Class: "Form 2B", DateOfBirth: "2011-11-30",
			GuardianName: "Kwame Mensah", GuardianPhone: "0244 123 456", EnrolledOn: "2024-01-08"},
		{RegistrationNo: "A-3", FirstName: "Zoë", SecondName: "Ñúñez", Class: "Form 1A", DateOfBirth: "2012-12-31", Status: "left"},
	}
	for name, p := range map[string]ParsedCSV{"csv": fromCSV, "xlsx": fromXLSX} {
		if !slices.Equal(p.Rows, want) {
			t.Errorf("%s rows:\n%+v\nwant\n%+v", name, p.Rows, want)
		}
		if !slices.Equal(p.Ignored, []string{"House"}) {
			t.Errorf("%s ignored %v, want House only", name, p.Ignored)
		}
		if len(p.Errors) != 1 || p.Errors[0].Line != 5 || !strings.Contains(p.Errors[0].Msg, "date_of_birth: 2031-01-01 is in the future") ||
			!strings.Contains(p.Errors[0].Msg, "guardian_phone: must be a phone number") {
			t.Errorf("%s errors %+v", name, p.Errors)
		}
	}
}

// Excel stores dates as numbers: a date-formatted cell, a date typed in
// Excel's default short format and a bare serial all read as the date.
func TestParseXLSXDates(t *testing.T) {
	t.Parallel()
	rows := [][]any{
		{"Reg No", "First name", "Second name", "Date of birth", "Enrolled"},
		{"D-1", "Amina", "Odhiambo", time.Date(2012, 3, 9, 0, 0, 0, 0, time.UTC), 45299},
		{"D-2", "Kofi", "Mensah", 40977, "2024-01-08"},
	}
	raw := xlsxOf(t, rows, func(f *excelize.File) {
		style, err := f.NewStyle(&excelize.Style{NumFmt: 14}) // Excel's short date
		if err != nil {
			t.Fatal(err)
		}
		if err := f.SetCellStyle("Sheet1", "B3", "B3", style); err != nil { // not a date column: stays as is
			t.Fatal(err)
		}
		if err := f.SetCellStyle("Sheet1", "D3", "D3", style); err != nil {
			t.Fatal(err)
		}
	})
	p, err := ParseStudents(bytes.NewReader(raw), ParseOptions{Name: "d.xlsx"})
	if err != nil || len(p.Errors) > 0 {
		t.Fatalf("%v %+v", err, p.Errors)
	}
	for i, want := range [][2]string{{"2012-03-09", "2024-01-08"}, {"2012-03-09", "2024-01-08"}} {
		if got := [2]string{p.Rows[i].DateOfBirth, p.Rows[i].EnrolledOn}; got != want {
			t.Errorf("row %d dates %v, want %v", i+2, got, want)
		}
	}
}

// An update import changes only what its cells say: a sheet of names and
// classes leaves guardians and notes as they are; what it writes is
// exported and read back the same; the preview names each changed field.
func TestImportRecordUpdateKeepsBlankFields(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Options{})
	all := recordStudents(t, s)
	var b bytes.Buffer
	fmt.Fprintf(&b, "Reg No,First name,Second name,Class,Guardian\n%s,%s,%s,Form 4D,\n%s,%s,%s,%s,\n",
		all[0].RegistrationNo, all[0].FirstName, all[0].SecondName,
		all[1].RegistrationNo, all[1].FirstName, all[1].SecondName, all[1].Class)
	p, err := ParseStudents(&b, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.PlanImport(ctx, p.Rows, p.Lines, p.Errors, ImportUpdate)
	if err != nil || len(plan.Errors) > 0 || len(plan.Changed) != 1 || plan.Unchanged != 1 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	if f := plan.Changed[0].ChangedFields(); !slices.Equal(f, []string{"class"}) {
		t.Fatalf("changed fields %v", f)
	}
	if _, err := s.ApplyImport(ctx, plan, CommandLine); err != nil {
		t.Fatal(err)
	}
	got, err := s.Student(ctx, all[0].ID)
	want := all[0]
	want.Class = "Form 4D"
	if err != nil || !sameRecord(got, want) {
		t.Fatalf("after the import %+v, want %+v", got, want)
	}
	// Export → import into an empty school: the same records.
	var out bytes.Buffer
	if err := s.ExportStudents(ctx, &out, ExportOptions{Format: ExportXLSX}); err != nil {
		t.Fatal(err)
	}
	back, err := ParseStudents(&out, ParseOptions{Name: "export.xlsx"})
	if err != nil || len(back.Errors) > 0 || len(back.Ignored) > 0 {
		t.Fatalf("export read back: %v %+v ignored %v", err, back.Errors, back.Ignored)
	}
	other := newStore(t, Options{})
	if _, errs, err := other.ImportStudents(ctx, back.Rows, back.Lines); err != nil || errs != nil {
		t.Fatal(errs, err)
	}
	pg, err := other.ListStudents(ctx, ListOptions{PerPage: MaxPerPage, Sort: "id"})
	if err != nil || len(pg.Students) != len(all) {
		t.Fatalf("%d students, %v", len(pg.Students), err)
	}
	mine, _ := s.ListStudents(ctx, ListOptions{PerPage: MaxPerPage, Sort: "registration_no"})
	theirs, _ := other.ListStudents(ctx, ListOptions{PerPage: MaxPerPage, Sort: "registration_no"})
	for i := range mine.Students {
		if !sameRecord(mine.Students[i], theirs.Students[i]) {
			t.Errorf("round trip: %+v\nbecame %+v", mine.Students[i], theirs.Students[i])
		}
	}
}
