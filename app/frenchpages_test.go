package app

import (
	"archive/zip"
	"bytes"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// langMessages tells whether a message shown on a page is in one
// language (French, Swahili): a catalogue entry of that language, or one
// made from an entry's format whose text values (%s) are its messages
// too or carry no English word. Values quoted by %q (a file's cell, a
// sheet's name) are what a person wrote.
type langMessages struct {
	lang     *i18n.Lang
	patterns *i18n.Patterns
	values   map[string]bool // the language's entries as written
	english  map[string]bool // words of the English catalogue keys that no entry of the language has
}

var verbsRE = regexp.MustCompile(`%[^sqd%]`)

func newLangMessages(code string) *langMessages {
	fr := i18n.Get(code)
	m := &langMessages{lang: fr, values: map[string]bool{}, english: map[string]bool{}}
	frWords := map[string]bool{}
	var formats []string
	for _, k := range fr.Keys() {
		v := fr.Entry(k)
		m.values[v] = true
		for _, w := range words(v) {
			frWords[w] = true
		}
		if strings.Contains(v, "%") && !verbsRE.MatchString(v) {
			formats = append(formats, v)
		}
	}
	// Column names are written in a file as they are, in every language,
	// and statuses in an address (?status=enrolled).
	for _, f := range append(store.StudentFieldNames(), store.Statuses...) {
		for _, w := range words(f) {
			frWords[w] = true
		}
	}
	for _, k := range fr.Keys() {
		for _, w := range words(k) {
			if !frWords[w] && len(w) > 1 {
				m.english[w] = true
			}
		}
	}
	// Words of the libraries' own messages (encoding/csv, archive/zip,
	// excelize) that the catalogue has no key with.
	for _, w := range []string{"bare", "quoted", "extraneous", "valid", "zip", "parse", "record", "wrong", "number", "fields"} {
		m.english[w] = true
	}
	m.patterns = i18n.NewPatterns(formats...)
	return m
}

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) })
}

// check returns "" when msg is in m's language, else the English it holds.
func (m *langMessages) check(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" || m.values[msg] {
		return ""
	}
	// An import row's errors: "column: message; column: message".
	if parts := strings.Split(msg, "; "); len(parts) > 1 && strings.Contains(parts[0], ": ") {
		if col, _, _ := strings.Cut(parts[0], ": "); !strings.Contains(col, " ") {
			for _, p := range parts {
				if bad := m.check(p); bad != "" {
					return bad
				}
			}
			return ""
		}
	}
	if col, rest, ok := strings.Cut(msg, ": "); ok && !strings.Contains(col, " ") && strings.Contains(col, "_") {
		return m.check(rest)
	}
	format, vals, ok := m.patterns.Match(msg)
	if !ok {
		return msg
	}
	// Which values were %s (the others are quoted or numbers).
	var verbs []byte
	for i := 0; i+1 < len(format); i++ {
		if format[i] == '%' {
			if c := format[i+1]; c != '%' {
				verbs = append(verbs, c)
			}
			i++
		}
	}
	for i, v := range vals {
		s, isString := v.(string)
		if !isString || verbs[i] != 's' || m.check(s) == "" {
			continue
		}
		for _, w := range words(s) {
			if m.english[w] {
				return s
			}
		}
	}
	return ""
}

// pageMessages are the messages of a page: the import's error, notice,
// notes and row errors, a form's errors and alerts.
var pageMessageREs = []*regexp.Regexp{
	regexp.MustCompile(`(?s)id="import-error">(.*?)</div>`),
	regexp.MustCompile(`(?s)id="import-notice">(.*?)</div>`),
	regexp.MustCompile(`(?s)class="alert alert-warning small import-note" role="note">(.*?)</div>`),
	regexp.MustCompile(`(?s)class="invalid-feedback" id="err_[a-z_0-9]+">(.*?)</div>\s*(?:</div>|<)`),
	regexp.MustCompile(`(?s)<div>([^<]*)</div>`),
	regexp.MustCompile(`(?s)class="alert alert-danger" role="alert">(.*?)</div>`),
	regexp.MustCompile(`(?s)<h1 class="h3">(.*?)</h1>\s*<p(?: class="mb-0")?>(.*?)</p>`), // an error page
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

var rowErrorsRE = regexp.MustCompile(`(?s)id="import-row-errors".*?</section>`)
var rowErrorRE = regexp.MustCompile(`(?s)<tr><td>\d+</td><td>(.*?)</td></tr>`)

func pageMessages(body string) []string {
	var out []string
	for _, m := range rowErrorRE.FindAllStringSubmatch(rowErrorsRE.FindString(body), -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	for _, re := range pageMessageREs {
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			for _, g := range m[1:] {
				if strings.Contains(g, "<div>") {
					continue // a list of messages: each is found on its own
				}
				out = append(out, html.UnescapeString(tagRE.ReplaceAllString(g, "")))
			}
		}
	}
	return out
}

// zipOf is a zip archive holding the named files.
func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestNoEnglishOnTranslatedPages feeds bad files to the import preview
// and bad input to the student form in a French session, then in a
// Swahili one: every message on the page is in the school's language
// (the words of encoding/csv, archive/zip and excelize included).
func TestNoEnglishOnTranslatedPages(t *testing.T) {
	for _, code := range []string{"fr", "sw"} {
		t.Run(code, func(t *testing.T) { noEnglishOnPages(t, code) })
	}
}

func noEnglishOnPages(t *testing.T, code string) {
	e := newEnv(t, "nantes-"+code, envOptions{})
	e.addStudent("N-1", "Zoë", "Müller")
	b := speak(t, e, code, false)
	fm := newLangMessages(code)
	header := "registration_no,first_name,second_name\n"
	damaged := zipOf(t, map[string]string{"a": "b"})
	damaged = damaged[:len(damaged)-10]
	files := []struct {
		name, file string
		content    []byte
		mode       string
		want       string // a French message the page must hold
		sw         string // a Swahili one
	}{
		{name: "bare quote", file: "a.csv", content: []byte(header + "A-1,Am\"ina,X\n"), want: "un guillemet (&#34;) au milieu d’une cellule (ligne 2, caractère 7)",
			sw: "alama ya nukuu (&#34;) katikati ya kisanduku (mstari 2, herufi 7)"},
		{name: "bare quote after accents", file: "a.csv", content: []byte(header + "A-1,Zoë,Mü\"ller\n"), want: "(ligne 2, caractère 11)"},
		{name: "quote missing", file: "a.csv", content: []byte(header + "A-1,\"Amina,X\nB-2,Kofi,Mensah\n"), want: "a un guillemet manquant ou en trop"},
		{name: "quote in the header", file: "a.csv", content: []byte("registration_no,fir\"st_name,second_name\n"), want: "ligne 1, caractère 20"},
		{name: "no header", file: "a.csv", content: []byte("A-1,Amina,Odhiambo\n"), want: "elle n’en nomme aucune"},
		{name: "missing column", file: "a.csv", content: []byte("registration_no,first_name\nA-1,Amina\n"), want: "l’en-tête n’a pas de colonne &#34;second_name&#34;"},
		{name: "missing column, others not understood", file: "a.csv", content: []byte("registration_no,first_name,Nom\nA-1,Amina,X\n"), want: "colonnes non comprises : &#34;Nom&#34;"},
		{name: "field count", file: "a.csv", content: []byte(header + "A-1,Amina\n"), want: "3 champs attendus", sw: "sehemu 3 zilitarajiwa"},
		{name: "bad row values", file: "a.csv", content: []byte("registration_no,first_name,second_name,date_of_birth,guardian_phone\nA 1,,X,2090-01-01,call me\n")},
		{name: "duplicate", file: "a.csv", content: []byte(header + "n-1,Zoë,Müller\nB-2,Kofi,Mensah\nb-2,Kofi,Mensah\n"), want: "existe déjà", sw: "tayari ipo"},
		{name: "empty", file: "a.csv", content: nil},
		{name: "not text", file: "a.csv", content: []byte{0x81, 0x8d, 0x8f, 0x90, 0x9d, 0x0a}},
		{name: "old xls", file: "a.xls", content: []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0}},
		{name: "csv named xlsx", file: "a.xlsx", content: []byte(header)},
		{name: "damaged workbook", file: "a.xlsx", content: damaged, want: "endommagé"},
		{name: "zip that is no workbook", file: "a.xlsx", content: zipOf(t, map[string]string{"hello.txt": "hi"}), want: "n’est pas un classeur lisible"},
		{name: "workbook with numbers and extra cells", file: "a.xlsx", content: workbook(t, "Form 2", [][]any{
			{"Adm No", "First name", "Surname"}, {123, "Kofi", "Mensah"}, {124, "Ama", "Owusu", "", "x"}})},
		{name: "workbook missing a column", file: "a.xlsx", content: workbook(t, "Form 2", [][]any{{"Adm No", "First name", "House"}}), want: "colonnes non comprises"},
		{name: "workbook without the sheet", file: "a.xlsx", mode: "Nope", content: workbook(t, "Form 2", [][]any{{"registration_no"}})},
		{name: "empty sheet", file: "a.xlsx", content: workbook(t, "Form 2", nil)},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			fields := map[string]string{"mode": "add"}
			if f.mode != "" {
				fields["sheet"] = f.mode
			}
			r := uploadFile(t, b, fields, f.file, f.content)
			if r.code != http.StatusOK && r.code != http.StatusUnprocessableEntity {
				t.Fatalf("code %d\n%s", r.code, r.body)
			}
			if want := map[string]string{"fr": f.want, "sw": f.sw}[code]; want != "" {
				wantBody(t, r, want)
			}
			msgs := pageMessages(r.body)
			if len(msgs) == 0 {
				t.Fatalf("no message on the page:\n%s", r.body)
			}
			for _, m := range msgs {
				if bad := fm.check(m); bad != "" {
					t.Errorf("English on the page: %q (in %q)", bad, m)
				}
			}
		})
	}

	forms := []struct {
		name   string
		values url.Values
	}{
		{"empty", url.Values{}},
		{"bad values", url.Values{"registration_no": {"A 1"}, "first_name": {strings.Repeat("x", 300)}, "second_name": {"Ok"},
			"date_of_birth": {"2090-01-01"}, "status_date": {"9 mars"}, "enrolled_on": {"1800-01-01"}, "guardian_phone": {"call me"},
			"guardian_email": {"not an e-mail"}, "status": {"asleep"}, "class": {strings.Repeat("c", 50)}}},
		{"exists", url.Values{"registration_no": {"n-1"}, "first_name": {"A"}, "second_name": {"B"}}},
	}
	for _, f := range forms {
		t.Run("form "+f.name, func(t *testing.T) {
			f.values.Set("_save", "1")
			r := b.submit("/admin/students/add/", "/admin/students/add/", f.values)
			wantCode(t, r, http.StatusUnprocessableEntity)
			msgs := pageMessages(r.body)
			if len(msgs) < 2 {
				t.Fatalf("messages %q on\n%s", msgs, r.body)
			}
			for _, m := range msgs {
				if bad := fm.check(m); bad != "" {
					t.Errorf("English on the form: %q (in %q)", bad, m)
				}
			}
		})
	}

	// The password form, every error at once.
	for _, pw := range []url.Values{
		{"old_password": {"wrong"}, "new_password1": {"admin"}, "new_password2": {"other"}},
		{"old_password": {"wrong"}, "new_password1": {"12345678901"}, "new_password2": {"12345678901"}},
		{"old_password": {"wrong"}, "new_password1": {"password"}, "new_password2": {"password"}},
	} {
		r := b.submit("/admin/password/", "/admin/password/", pw)
		wantCode(t, r, http.StatusUnprocessableEntity)
		msgs := pageMessages(r.body)
		if len(msgs) < 2 {
			t.Fatalf("password form: messages %q on\n%s", msgs, r.body)
		}
		for _, m := range msgs {
			if bad := fm.check(m); bad != "" {
				t.Errorf("English on the password form: %q (in %q)", bad, m)
			}
		}
	}
	// The app's error pages.
	for path, code := range map[string]int{
		"/admin/students/999999/": http.StatusNotFound, "/admin/students/?page=x": http.StatusBadRequest,
		"/admin/students/?page=99": http.StatusNotFound, "/admin/students/?status=asleep": http.StatusBadRequest,
		"/admin/students/?per_page=7": http.StatusBadRequest, "/admin/nowhere/": http.StatusNotFound,
	} {
		r := b.get(path)
		wantCode(t, r, code)
		msgs := pageMessages(r.body)
		if len(msgs) < 2 {
			t.Fatalf("%s: messages %q on\n%s", path, msgs, r.body)
		}
		for _, m := range msgs {
			if bad := fm.check(m); bad != "" {
				t.Errorf("English on the error page %s: %q (in %q)", path, bad, m)
			}
		}
	}
}
