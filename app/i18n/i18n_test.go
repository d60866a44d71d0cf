package i18n

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestChoose(t *testing.T) {
	cases := []struct {
		name   string
		school string
		may    bool
		accept string
		want   string
	}{
		{"default school, no header", "", true, "", "en"},
		{"unknown school language counts as the default", "de", true, "", "en"},
		{"school in French, visitors may not choose", "fr", false, "en-GB,en;q=0.9", "fr"},
		{"school in English, visitors may not choose", "en", false, "fr", "en"},
		{"French browser", "en", true, "fr-FR,fr;q=0.9,en;q=0.5", "fr"},
		{"Belgian French", "en", true, "fr-BE", "fr"},
		{"Canadian French with English second", "en", true, "fr-CA, en;q=0.8", "fr"},
		{"English preferred over French", "fr", true, "en-US,en;q=0.9,fr;q=0.5", "en"},
		{"quality decides, not order", "en", true, "en;q=0.2, fr;q=0.9", "fr"},
		{"unsupported only: the school's language", "fr", true, "de-DE,de;q=0.9", "fr"},
		{"unsupported only, English school", "en", true, "ja", "en"},
		{"unsupported first, then supported", "en", true, "de, fr;q=0.5", "fr"},
		{"wildcard: the school's language", "fr", true, "*", "fr"},
		{"garbage header", "fr", true, ";;;q=x,,", "fr"},
		{"Swahili school", "sw", false, "fr", "sw"},
		{"Swahili browser", "en", true, "sw-KE,sw;q=0.9,en;q=0.5", "sw"},
		{"very long header", "en", true, "xx-" + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "en"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Choose(c.school, c.may, c.accept); got != c.want {
				t.Errorf("Choose(%q, %v, %q) = %q, want %q", c.school, c.may, c.accept, got, c.want)
			}
		})
	}
}

func TestLoadZone(t *testing.T) {
	for _, ok := range []string{"UTC", "Africa/Nairobi", "Europe/Paris", "America/Argentina/Buenos_Aires", " Africa/Lagos "} {
		if _, err := LoadZone(ok); err != nil {
			t.Errorf("LoadZone(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Local", "Mars/Olympus", "../../etc/passwd", "Africa/", "EAT+3"} {
		if _, err := LoadZone(bad); err == nil {
			t.Errorf("LoadZone(%q) accepted", bad)
		}
	}
	if Zone("nonsense") != time.UTC || Zone("") != time.UTC {
		t.Error("Zone of a bad name is not UTC")
	}
}

// TestEmbeddedZones: the zone database is linked into the binary
// (time/tzdata), so a machine or container without /usr/share/zoneinfo
// still knows the zones. LoadZone finds the system's database first, so
// what is checked is the link itself.
func TestEmbeddedZones(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains("\n"+string(out), "\ntime/tzdata\n") {
		t.Error("time/tzdata is not linked: zones fail where the system has no zoneinfo")
	}
}

// TestMessagesWithNumbers: a message made with numbers in it is
// translated by its pattern; one without a pattern stays as it is.
func TestMessagesWithNumbers(t *testing.T) {
	fr := Get("fr")
	cases := map[string]string{
		"must be at most 255 characters":  "doit comporter au plus 255 caractères",
		"must be at most 2000 characters": "doit comporter au plus 2\u00a0000 caractères",
		"must be at most many characters": "must be at most many characters",
		"row 7 of 9: something else":      "row 7 of 9: something else",
		"is required":                     "est obligatoire",
	}
	for in, want := range cases {
		if got := fr.T(in); got != want {
			t.Errorf("fr.T(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Get("en").T("must be at most 40 characters"); got != "must be at most 40 characters" {
		t.Errorf("English changed a message: %q", got)
	}
}

// TestFastPathAsPrinter: T's shortcut past the printer writes what the
// printer writes.
func TestFastPathAsPrinter(t *testing.T) {
	cases := []struct {
		key  string
		args []any
	}{
		{"Page %d", []any{12}}, {"%d", []any{999}}, {"%d", []any{0}}, {"%d–%d of %d", []any{1, 50, 999}},
		{"Change password: %s", []any{"zoë"}}, {"%[1]s %[2]s %[3]s, %[4]s %[5]s", []any{"6", "Dec", "2026", "21:20", "EAT"}},
		{"%d of %d rows written (%d%%).", []any{5, 10, 50}}, {"Unknown key %d", []any{3}}, {"No verbs", []any{3}},
		{"Import %d", []any{int64(42)}},
	}
	for _, lang := range Languages {
		l := Get(lang.Code)
		for _, c := range cases {
			if got, want := l.T(c.key, c.args...), l.printer.Sprintf(c.key, c.args...); got != want {
				t.Errorf("%s: T(%q, %v) = %q, the printer %q", l.Code, c.key, c.args, got, want)
			}
		}
	}
}

// TestStoredObjects: what the history stores in English for counts reads
// in the page's language.
func TestStoredObjects(t *testing.T) {
	fr := Get("fr")
	for in, want := range map[string]string{"12 students": "12 élèves", "1 student": "1 élève", "1500 students": "1\u00a0500 élèves",
		"Amina Njeri (REG/2024/1)": "Amina Njeri (REG/2024/1)", "user alice": "user alice"} {
		if got := fr.T(in); got != want {
			t.Errorf("fr.T(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPatterns(t *testing.T) {
	p := NewPatterns("%q is not a date", "%q repeats line %d (a)", "%s is in the future", "100%% of %d")
	cases := []struct {
		msg    string
		format string
		args   []any
	}{
		{`"x \"y\"" is not a date`, "%q is not a date", []any{`x "y"`}},
		{`"A1" repeats line 12 (a)`, "%q repeats line %d (a)", []any{"A1", 12}},
		{`2030-01-01 is in the future`, "%s is in the future", []any{"2030-01-01"}},
		{`100% of 3`, "100%% of %d", []any{3}},
		{`"A1" repeats line x (a)`, "", nil},
		{`is in the future`, "", nil},
		{`something else`, "", nil},
	}
	for _, c := range cases {
		format, args, ok := p.Match(c.msg)
		if format != c.format || ok != (c.format != "") || fmt.Sprint(args) != fmt.Sprint(c.args) {
			t.Errorf("Match(%q) = %q %v %v, want %q %v", c.msg, format, args, ok, c.format, c.args)
		}
	}
}

// TestEveryCatalogueLoads: each language's file parses (a catalogue is
// loaded on its first use, so a bad file would otherwise fail only where
// a school shows that language), and Get gives each its own catalogue
// and the default one for a code it does not know.
func TestEveryCatalogueLoads(t *testing.T) {
	for _, l := range Languages {
		got, err := load(messageFS, l)
		if err != nil {
			t.Fatalf("%s: %v", l.Code, err)
		}
		if len(got.plain) == 0 || got.Code != l.Code {
			t.Errorf("%s: %d entries, code %q", l.Code, len(got.plain), got.Code)
		}
		if Get(l.Code).Code != l.Code {
			t.Errorf("Get(%q) is %q", l.Code, Get(l.Code).Code)
		}
	}
	if Get("de").Code != Default || Get("").Code != Default {
		t.Errorf("Get of an unknown code is not %q", Default)
	}
	bad := fstest.MapFS{
		"messages/en.json": {Data: []byte(`{"%d students": {"one": "%d student", "other": "%d students"}}`)},
		"messages/fr.json": {Data: []byte(`{"Students": {"one": "élève"}}`)},
		"messages/sw.json": {Data: []byte(`{"Students": `)},
	}
	for _, l := range Languages[1:] {
		if _, err := load(bad, l); err == nil {
			t.Errorf("%s: a bad file loaded", l.Code)
		}
	}
	if _, err := load(bad, Languages[0]); err != nil {
		t.Errorf("en: %v", err)
	}
}
