package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// students import FILE.xlsx (ignored columns and notes on stderr, sheet
// rows in errors) and students export -o FILE.xlsx / --format xlsx: a
// workbook that imports into another school as the same students, and
// holds nothing of the school it was not exported from.
func TestCLIXLSX(t *testing.T) {
	c := newCLI(t)
	name, other := uniqueTenant(t, "xlsx"), uniqueTenant(t, "xlsxother")
	t.Cleanup(func() {
		c.run("", nil, "tenant", "delete", name, "--purge-data", "--yes")
		c.run("", nil, "tenant", "delete", other, "--purge-data", "--yes")
	})
	c.ok("tenant", "create", name, "--host", name+".school.localhost")
	c.ok("tenant", "create", other, "--host", other+".school.localhost")
	dir := t.TempDir()
	write := func(file string, rows [][]any) string {
		t.Helper()
		f := excelize.NewFile()
		defer f.Close()
		f.SetSheetName("Sheet1", "Form 2")
		for i, row := range rows {
			cell, _ := excelize.CoordinatesToCellName(1, i+1)
			if err := f.SetSheetRow("Form 2", cell, &row); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, file)
		if err := f.SaveAs(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	c.ok("manage", other, "students", "import", write("other.xlsx", [][]any{{"Reg No", "First name", "Surname"}, {"O/1", "Other", "Pupil"}}))

	bad := write("bad.xlsx", [][]any{{"Class", "Reg No", "First name", "Surname"}, {"2B", "X/1", "Wanjiru", "Kamau"}, {"2B", "X/2", "", "Otieno"}})
	r := c.run("", nil, "manage", name, "students", "import", bad)
	if r.code != 1 || !strings.Contains(r.stderr, `sheet "Form 2" row 3: first_name: `) || !strings.Contains(r.stderr, "nothing was imported") {
		t.Fatalf("bad row: exit %d, stderr %q", r.code, r.stderr)
	}
	good := write("good.xlsx", [][]any{{"House", "Reg No", "First name", "Surname", "Locker"},
		{"Simba", "X/1", "Wanjiru", "Kamau", "12"}, {"Chui", 42, "Otieno", "=Odhiambo"}})
	r = c.ok("manage", name, "students", "import", good, "--sheet", "form 2")
	if !strings.Contains(r.stdout, "Imported 2 students") ||
		!strings.Contains(r.stderr, "note: ignored 2 columns (not a student field): House, Locker") ||
		!strings.Contains(r.stderr, "note: 1 registration number is a plain number (the first: 42 on row 3)") {
		t.Fatalf("import: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r := c.run("", nil, "manage", name, "students", "import", good, "--sheet", "Form 9"); r.code != 1 ||
		!strings.Contains(r.stderr, `no sheet "Form 9"; its sheets are "Form 2"`) {
		t.Fatalf("missing sheet: exit %d, %q", r.code, r.stderr)
	}
	notXLSX := filepath.Join(dir, "list.xlsx")
	os.WriteFile(notXLSX, []byte("registration_no,first_name,second_name\nZ/1,A,B\n"), 0o600)
	if r := c.run("", nil, "manage", name, "students", "import", notXLSX); r.code != 1 || !strings.Contains(r.stderr, "list.xlsx is not an Excel workbook (.xlsx) inside") {
		t.Fatalf("CSV named .xlsx: exit %d, %q", r.code, r.stderr)
	}

	// Export by -o's extension, and by --format to standard output.
	out := filepath.Join(dir, "export.xlsx")
	c.ok("manage", name, "students", "export", "-o", out)
	file, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(file, []byte("PK\x03\x04")) {
		t.Fatalf("export -o %s: %v, starts %q", out, err, file[:min(len(file), 8)])
	}
	piped := c.ok("manage", name, "students", "export", "--format", "xlsx").stdout
	if !strings.HasPrefix(piped, "PK\x03\x04") {
		t.Fatalf("--format xlsx to standard output starts %q", piped[:min(len(piped), 8)])
	}
	if r := c.run("", nil, "manage", name, "students", "export", "--format", "ods"); r.code != 2 || !strings.Contains(r.stderr, "--format ods: say csv or xlsx") {
		t.Fatalf("--format ods: exit %d, %q", r.code, r.stderr)
	}
	for _, s := range []string{"O/1", "Other", "Pupil"} {
		if strings.Contains(piped, s) || bytes.Contains(file, []byte(s)) {
			t.Fatalf("%s's export holds %q of %s", name, s, other)
		}
	}
	// Into the other school: the same students as here.
	c.ok("manage", other, "students", "import", out)
	csvOut := c.ok("manage", other, "students", "export", "--no-bom").stdout
	if want := exportCSV("42,Otieno,'=Odhiambo", "O/1,Other,Pupil", "X/1,Wanjiru,Kamau"); csvOut != want {
		t.Fatalf("after importing the export: %q, want %q", csvOut, want)
	}
}
