package e2e

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	firstNames = []string{"Amani", "Abena", "Baraka", "Chiamaka", "Daudi", "Efua", "Faith", "Grace", "Halima",
		"Imani", "Jabari", "Kofi", "Lulu", "Makena", "Njeri", "Obinna", "Pendo", "Rehema", "Sefa", "Tariq",
		"Uchenna", "Wairimu", "Yaw", "Zawadi", "Akosua", "Kamau", "Nana", "Esi", "Otieno", "Adjoa"}
	secondNames = []string{"Achieng", "Boateng", "Chege", "Darko", "Mwangi", "Asante", "Kariuki", "Owusu",
		"Njoroge", "Mensah", "Wekesa", "Appiah", "Omondi", "Agyeman", "Kiprop", "Ofori", "Mutua", "Adjei",
		"Wanjiku", "Quaye", "Kibet", "Amoah", "Nyaga", "Sarpong", "Koech", "Tetteh", "Maina", "Frimpong", "Ruto"}
)

// studentRows are n distinct, valid students with registration numbers
// prefix/00001, prefix/00002, …
func studentRows(prefix string, n int) [][]string {
	rows := make([][]string, n)
	for i := range rows {
		rows[i] = []string{
			fmt.Sprintf("%s/%05d", prefix, i+1),
			firstNames[i%len(firstNames)],
			secondNames[(i/len(firstNames)+i)%len(secondNames)],
		}
	}
	return rows
}

// writeCSV writes a header and rows to a file in dir; it returns the path.
func writeCSV(t *testing.T, dir, name string, rows [][]string) string {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"registration_no", "first_name", "second_name"})
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportedRows is the number of students `campus manage T students export`
// writes: what the school's database holds, seen without the browser.
func exportedRows(t *testing.T, sys *devSystem, tenant string) int {
	t.Helper()
	out, err := sys.campus(nil, "manage", tenant, "students", "export")
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("export of %s is not CSV: %v\n%.500s", tenant, err, out)
	}
	if len(records) == 0 {
		t.Fatalf("export of %s has no header", tenant)
	}
	return len(records) - 1
}
