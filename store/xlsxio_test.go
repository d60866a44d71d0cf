package store

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// xlsxOf builds a workbook whose first sheet holds rows (nil cells are
// left out; a cell may be any value excelize writes: a number stays a
// number). setup, if set, runs before the workbook is saved.
func xlsxOf(t *testing.T, rows [][]any, setup func(f *excelize.File)) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, row := range rows {
		for j, v := range row {
			if v == nil {
				continue
			}
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := f.SetCellValue("Sheet1", cell, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if setup != nil {
		setup(f)
	}
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func strRows(rows [][]string) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		for _, c := range r {
			out[i] = append(out[i], c)
		}
	}
	return out
}

// The same table as a CSV and as a workbook gives the same rows, lines
// and row errors: the two formats share one path below the file.
func TestParseXLSXSameAsCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rows    [][]string
		ignored []string
	}{
		{name: "plain", rows: [][]string{{"registration_no", "first_name", "second_name"}, {"A-1", "Amina", "Odhiambo"}, {"B-2", "Kofi", "Mensah"}}},
		{name: "aliases, any order, case and spaces",
			rows: [][]string{{" Surname ", "FIRST NAME", "Reg No"}, {"Odhiambo", "Amina", "A-1"}}},
		{name: "registration number, admission number, last name",
			rows: [][]string{{"Registration number", "Given name", "Last name"}, {"A-1", "Amina", "Odhiambo"}}},
		{name: "unknown columns ignored", rows: [][]string{{"Class", "Adm No", "First name", "Date of birth", "Surname", "Guardian phone"},
			{"4B", "A-1", "Amina", "2012-03-04", "Odhiambo", "+254 700 000000"}},
			ignored: []string{"Class", "Date of birth", "Guardian phone"}},
		{name: "bad and repeated rows", rows: [][]string{{"registration_no", "first_name", "second_name"},
			{"A 1", "Amina", "Odhiambo"}, {"B-2", "", "Mensah"}, {"C-3", "Ama", "Owusu"}, {"c-3", "Other", "Person"}}},
		{name: "formula guard taken off", rows: [][]string{{"registration_no", "first_name", "second_name"},
			{"'-4", `'=HYPERLINK("x")`, "''@x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c bytes.Buffer
			w := csv.NewWriter(&c)
			if err := w.WriteAll(tt.rows); err != nil {
				t.Fatal(err)
			}
			fromCSV, err := ParseStudents(&c, ParseOptions{Name: "class.csv"})
			if err != nil {
				t.Fatal(err)
			}
			fromXLSX, err := ParseStudents(bytes.NewReader(xlsxOf(t, strRows(tt.rows), nil)), ParseOptions{Name: "class.xlsx"})
			if err != nil {
				t.Fatal(err)
			}
			if fromXLSX.Format != FormatXLSX || fromXLSX.Sheet != "Sheet1" || fromCSV.Format != FormatCSV {
				t.Errorf("formats %s/%s sheet %q", fromCSV.Format, fromXLSX.Format, fromXLSX.Sheet)
			}
			if !slices.Equal(fromXLSX.Rows, fromCSV.Rows) || !slices.Equal(fromXLSX.Lines, fromCSV.Lines) ||
				!slices.Equal(fromXLSX.Errors, fromCSV.Errors) {
				t.Fatalf("xlsx: %v %v %v\ncsv:  %v %v %v", fromXLSX.Rows, fromXLSX.Lines, fromXLSX.Errors,
					fromCSV.Rows, fromCSV.Lines, fromCSV.Errors)
			}
			if len(fromCSV.Rows)+len(fromCSV.Errors) != len(tt.rows)-1 {
				t.Errorf("%d rows and %d errors from %d data rows", len(fromCSV.Rows), len(fromCSV.Errors), len(tt.rows)-1)
			}
			if !slices.Equal(fromXLSX.Ignored, tt.ignored) || !slices.Equal(fromCSV.Ignored, tt.ignored) {
				t.Errorf("ignored %q (csv %q), want %q", fromXLSX.Ignored, fromCSV.Ignored, tt.ignored)
			}
		})
	}
}

// What only workbooks have: blank rows and cells, numbers, number
// formats, several sheets, cells right of the header.
func TestParseXLSX(t *testing.T) {
	t.Parallel()
	header := []any{"Reg No", "First name", "Surname"}
	tests := []struct {
		name      string
		rows      [][]any
		setup     func(f *excelize.File)
		sheet     string
		rows2     []StudentInput
		lines     []int
		errLines  []int
		notes     []string // substrings, one per note
		fileError string
	}{
		{name: "blank rows above the header and between rows; short rows padded",
			rows: [][]any{nil, {nil, "  "}, header, {"A-1", "Amina", "Odhiambo"}, nil, {" ", nil, ""}, {"B-2", "Kofi"}},
			// Row 7 has no surname: a row error on its sheet row.
			rows2: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}}, lines: []int{4}, errLines: []int{7}},
		{name: "numbers: registration numbers as numbers get a note about zeros",
			rows:  [][]any{header, {123, "Amina", "Odhiambo"}, {"000124", "Kofi", "Mensah"}, {4567, "Ama", "Owusu"}},
			rows2: []StudentInput{{RegistrationNo: "123", FirstName: "Amina", SecondName: "Odhiambo"}, {RegistrationNo: "000124", FirstName: "Kofi", SecondName: "Mensah"}, {RegistrationNo: "4567", FirstName: "Ama", SecondName: "Owusu"}},
			lines: []int{2, 3, 4}, notes: []string{"2 registration numbers are plain numbers (the first: 123 on row 2)"}},
		{name: "a number formatted 000000 keeps its zeros",
			rows: [][]any{header, {125, "Amina", "Odhiambo"}},
			setup: func(f *excelize.File) {
				format := "000000"
				st, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &format})
				f.SetCellStyle("Sheet1", "A2", "A2", st)
			},
			rows2: []StudentInput{{RegistrationNo: "000125", FirstName: "Amina", SecondName: "Odhiambo"}}, lines: []int{2}},
		{name: "cells right of the header are ignored, with a note",
			rows:  [][]any{header, {"A-1", "Amina", "Odhiambo", nil, "stray"}, {"B-2", "Kofi", "Mensah"}},
			rows2: []StudentInput{{RegistrationNo: "A-1", FirstName: "Amina", SecondName: "Odhiambo"}, {RegistrationNo: "B-2", FirstName: "Kofi", SecondName: "Mensah"}}, lines: []int{2, 3},
			notes: []string{"1 row has cells to the right of the last column with a header (the first: row 2)"}},
		{name: "a formula without a saved value is an empty cell",
			rows: [][]any{header, {"A-1", "Amina", nil}},
			setup: func(f *excelize.File) {
				f.SetCellFormula("Sheet1", "C2", `"Odh"&"iambo"`)
			},
			errLines: []int{2}},
		{name: "a named sheet, found without case",
			rows: [][]any{{"not", "this"}},
			setup: func(f *excelize.File) {
				f.NewSheet("Form 2")
				for i, v := range []any{"registration_no", "first_name", "second_name", "F-1", "Zoë", "伊藤"} {
					cell, _ := excelize.CoordinatesToCellName(i%3+1, i/3+1)
					f.SetCellValue("Form 2", cell, v)
				}
			},
			sheet: "form 2", rows2: []StudentInput{{RegistrationNo: "F-1", FirstName: "Zoë", SecondName: "伊藤"}}, lines: []int{2}},
		{name: "a sheet that is not there names those that are", rows: [][]any{header}, sheet: "Form 3",
			fileError: `no sheet "Form 3"; its sheets are "Sheet1"`},
		{name: "an empty sheet", rows: nil, fileError: `sheet "Sheet1" is empty`},
		{name: "no header", rows: [][]any{{"A-1", "Amina", "Odhiambo"}}, fileError: "must be the header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseStudents(bytes.NewReader(xlsxOf(t, tt.rows, tt.setup)), ParseOptions{Sheet: tt.sheet})
			if tt.fileError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fileError) {
					t.Fatalf("err = %v, want one containing %q", err, tt.fileError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Rows, tt.rows2) || !slices.Equal(p.Lines, tt.lines) {
				t.Errorf("rows %q lines %v, want %q %v", p.Rows, p.Lines, tt.rows2, tt.lines)
			}
			var errLines []int
			for _, re := range p.Errors {
				errLines = append(errLines, re.Line)
			}
			if !slices.Equal(errLines, tt.errLines) {
				t.Errorf("row errors %v, want on lines %v", p.Errors, tt.errLines)
			}
			if len(p.Notes) != len(tt.notes) {
				t.Fatalf("notes %q, want %q", p.Notes, tt.notes)
			}
			for i, n := range tt.notes {
				if !strings.Contains(p.Notes[i], n) {
					t.Errorf("note %q, want one containing %q", p.Notes[i], n)
				}
			}
		})
	}
}

// Files that are not workbooks, or are too big, are refused with a clear
// message and nothing read.
func TestParseXLSXRefused(t *testing.T) {
	t.Parallel()
	// A zip bomb: a sheet declaring 1 TB; and one that declares 100 bytes
	// but unzips to more (archive/zip stops at the declared size).
	bomb := func(declared uint64, actual int) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "[Content_Types].xml", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`))
		raw, err := zw.CreateRaw(&zip.FileHeader{Name: "xl/worksheets/sheet1.xml", Method: zip.Store,
			CompressedSize64: uint64(actual), UncompressedSize64: declared})
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(bytes.Repeat([]byte(" "), actual))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	notAWorkbook := func() []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.Create("hello.txt")
		w.Write([]byte("hello"))
		zw.Close()
		return b.Bytes()
	}()
	// A huge sheet: every row's one cell in the last column (XFD), so
	// each row is 16,384 cells wide.
	wide := func() []byte {
		var b strings.Builder
		b.WriteString(`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`)
		b.WriteString(`<row r="1"><c r="A1" t="inlineStr"><is><t>registration_no</t></is></c><c r="B1" t="inlineStr"><is><t>first_name</t></is></c><c r="C1" t="inlineStr"><is><t>second_name</t></is></c></row>`)
		for r := 2; r < 400; r++ {
			fmt.Fprintf(&b, `<row r="%d"><c r="XFD%d"><v>1</v></c></row>`, r, r)
		}
		b.WriteString(`</sheetData></worksheet>`)
		return replaceSheet(t, xlsxOf(t, nil, nil), b.String())
	}()
	// Empty cells inflate thousands of times and cost CPU to read, not
	// cells: refused by their inflation (8 MB of them unzip from ~10 KB).
	empty := func() []byte {
		var b strings.Builder
		b.WriteString(`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">`)
		for b.Len() < 8<<20 {
			b.WriteString(`<c/><c/><c/><c/><c/><c/><c/><c/>`)
		}
		b.WriteString(`</row></sheetData></worksheet>`)
		return replaceSheet(t, xlsxOf(t, nil, nil), b.String())
	}()
	tall := func() []byte {
		f := excelize.NewFile()
		defer f.Close()
		sw, err := f.NewStreamWriter("Sheet1")
		if err != nil {
			t.Fatal(err)
		}
		sw.SetRow("A1", []any{"registration_no", "first_name", "second_name"})
		for r := 2; r <= MaxImportRows+2; r++ {
			cell, _ := excelize.CoordinatesToCellName(1, r)
			if err := sw.SetRow(cell, []any{fmt.Sprintf("T-%d", r), "A", "B"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.Flush(); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		f.WriteTo(&b)
		return b.Bytes()
	}()
	tests := []struct {
		name string
		in   []byte
		opts ParseOptions
		want string
	}{
		{name: "zip bomb declaring its size", in: bomb(1<<40, 10), want: "unzips to more than 128 MB (xl/worksheets/sheet1.xml alone declares 1048576 MB)"},
		{name: "zip bomb hiding its size", in: bomb(100, 1<<20), want: "not a workbook that can be read"},
		{name: "a CSV named .xlsx", in: []byte("registration_no,first_name,second_name\nA-1,A,B\n"), opts: ParseOptions{Name: "Form 2.xlsx"},
			want: `Form 2.xlsx is not an Excel workbook (.xlsx) inside`},
		{name: "text named .XLSX", in: []byte("hello"), opts: ParseOptions{Name: "/tmp/x.XLSX"}, want: "x.XLSX is not an Excel workbook"},
		{name: "a zip that is no workbook", in: notAWorkbook, want: "not a workbook that can be read"},
		{name: "a damaged zip", in: append([]byte("PK\x03\x04"), bytes.Repeat([]byte{1}, 100)...), want: "damaged"},
		{name: "an old .xls", in: append(slices.Clone(oleMagic), make([]byte, 512)...), want: "old Excel workbook (.xls)"},
		{name: "a sheet of 16,384-cell rows", in: wide, want: "more than 4000000 cells"},
		{name: "a sheet of empty cells that inflates 800 times", in: empty, want: "part xl/worksheets/sheet1.xml unzips to"},
		{name: "more rows than an import takes", in: tall, want: "more than 100000 rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseStudents(bytes.NewReader(tt.in), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if len(p.Rows) > 0 && tt.name != "more rows than an import takes" {
				t.Errorf("%d rows read from a refused file", len(p.Rows))
			}
		})
	}
}

// replaceSheet returns the workbook with its first sheet's XML replaced.
func replaceSheet(t *testing.T, workbook []byte, sheetXML string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(workbook), int64(len(workbook)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, zf := range zr.File {
		w, err := zw.Create(zf.Name)
		if err != nil {
			t.Fatal(err)
		}
		if zf.Name == "xl/worksheets/sheet1.xml" {
			w.Write([]byte(sheetXML))
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		var part bytes.Buffer
		part.ReadFrom(rc)
		rc.Close()
		w.Write(part.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
