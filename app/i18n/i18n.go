// Package i18n holds the languages of the school app: its message
// catalogues (golang.org/x/text/message/catalog, built from the JSON files
// in messages/), the choice of a language for a request (the school's
// setting, or the visitor's Accept-Language where the school allows it)
// and the school's time zone.
//
// Messages are keyed by their English text, as gettext does: a template
// says {{t "Students"}} and reads as the English page; a key with no entry
// in a language is shown in English. English needs entries only for plural
// forms ("%d students": one/other). A key without arguments is looked up
// and never formatted (a % in it is a plain %); a key with arguments is a
// Printf format, with numbers in the language's style (5,000 / 5 000) and
// the plural form chosen by the count.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed messages/*.json
var messageFS embed.FS

// Default is the language of a school that chose none.
const Default = "en"

// Language is one language the app speaks.
type Language struct {
	Code string // "en", "fr", "sw": the value of the school's setting and of <html lang>
	Name string // in the language itself, for the settings form
	tag  language.Tag
}

// Languages are the supported languages, in the settings form's order.
var Languages = []Language{
	{Code: "en", Name: "English", tag: language.English},
	{Code: "fr", Name: "Français", tag: language.French},
	// Swahili covers the public pages and the admin; its entries await a
	// native speaker's review.
	{Code: "sw", Name: "Kiswahili", tag: language.Swahili},
}

// Supported reports whether code names a supported language.
func Supported(code string) bool {
	for _, l := range Languages {
		if l.Code == code {
			return true
		}
	}
	return false
}

// Lang translates into one language. It is safe for concurrent use.
type Lang struct {
	Code    string
	plain   map[string]string // keys without arguments: looked up, never formatted
	plural  map[string]bool   // keys with plural forms
	printer *message.Printer
}

// T translates key. Without args the key is looked up and returned as it
// is when the language has no entry; with args it is a Printf format.
// A message made elsewhere with numbers in it ("must be at most 40
// characters", from the store) is found by its pattern ("must be at most
// %d characters") when the language has no entry for it as it is.
func (l *Lang) T(key string, args ...any) string {
	if len(args) == 0 {
		if s, ok := l.plain[key]; ok {
			return s
		}
		if pattern, nums := numberPattern(key); len(nums) > 0 {
			if _, ok := l.plain[pattern]; ok {
				return l.printer.Sprintf(pattern, nums...)
			}
		}
		return key
	}
	if !l.plural[key] {
		format, ok := l.plain[key]
		if !ok {
			format = key
		}
		if plainArgs(args) && verbCount(format) == len(args) {
			// What the printer would write, at a fraction of its cost:
			// no plural form to choose, and numbers below 1,000 are
			// written alike in every language (pages call this many
			// times: page links, counts).
			return fmt.Sprintf(format, args...)
		}
	}
	return l.printer.Sprintf(key, args...)
}

// plainArgs reports whether every argument is a string or an integer
// from 0 to 999.
func plainArgs(args []any) bool {
	for _, a := range args {
		var n int64
		switch v := a.(type) {
		case string:
			continue
		case int:
			n = int64(v)
		case int64:
			n = v
		default:
			return false
		}
		if n < 0 || n > 999 {
			return false
		}
	}
	return true
}

// verbCount is the number of Printf verbs of a format (%% is none).
func verbCount(format string) int {
	n := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			i++
			continue
		}
		n++
	}
	return n
}

var digits = regexp.MustCompile(`[0-9]+`)

// numberPattern is s with each run of digits replaced by %d (and a % of
// its own escaped), and the numbers.
func numberPattern(s string) (string, []any) {
	var nums []any
	pattern := digits.ReplaceAllStringFunc(strings.ReplaceAll(s, "%", "%%"), func(d string) string {
		n, err := strconv.Atoi(d)
		if err != nil {
			return d
		}
		nums = append(nums, n)
		return "%d"
	})
	return pattern, nums
}

// Has reports whether the language has its own entry for key.
func (l *Lang) Has(key string) bool {
	_, ok := l.plain[key]
	return ok
}

// Keys are the keys the language has entries for.
func (l *Lang) Keys() []string {
	keys := make([]string, 0, len(l.plain))
	for k := range l.plain {
		keys = append(keys, k)
	}
	return keys
}

// Entry is a language's entry for key as written in its file (the "other"
// form of a plural), for tests.
func (l *Lang) Entry(key string) string { return l.plain[key] }

// catalogues holds each language's catalogue, parsed on its first use: an
// app shows its school's language (and the visitors' choices, where the
// school allows them), so a start parses only what it shows.
var catalogues = func() map[string]*catalogue {
	m := make(map[string]*catalogue, len(Languages))
	for _, l := range Languages {
		m[l.Code] = &catalogue{lang: l}
	}
	return m
}()

type catalogue struct {
	lang Language
	once sync.Once
	l    *Lang
}

// Get returns the language with the code, or the default one.
func Get(code string) *Lang {
	c, ok := catalogues[code]
	if !ok {
		c = catalogues[Default]
	}
	c.once.Do(func() { c.l = mustLoad(c.lang) })
	return c.l
}

// mustLoad builds a language's catalogue from the embedded files: a bad
// file is a programming error, caught by TestEveryCatalogueLoads.
func mustLoad(l Language) *Lang {
	out, err := load(messageFS, l)
	if err != nil {
		panic(err)
	}
	return out
}

// load builds the catalogue of l. Each language has a catalogue of its
// own: a key without an entry in it is the format itself (as English).
func load(fsys fs.FS, l Language) (*Lang, error) {
	b := catalog.NewBuilder()
	plain, plural, err := loadFile(fsys, b, l)
	if err != nil {
		return nil, err
	}
	return &Lang{Code: l.Code, plain: plain, plural: plural, printer: message.NewPrinter(l.tag, message.Catalog(b))}, nil
}

// loadFile sets the entries of l's file in b, and returns its keys.
func loadFile(fsys fs.FS, b *catalog.Builder, l Language) (map[string]string, map[string]bool, error) {
	name := "messages/" + l.Code + ".json"
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, nil, fmt.Errorf("read catalogue %s: %w", name, err)
	}
	entries := map[string]json.RawMessage{}
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, nil, fmt.Errorf("parse catalogue %s: %w", path.Base(name), err)
	}
	plain, plural := make(map[string]string, len(entries)), make(map[string]bool, len(entries))
	for key, raw := range entries {
		msg, other, err := parseEntry(raw)
		plural[key] = !json.Valid(raw) || raw[0] == '{'
		if err != nil {
			return nil, nil, fmt.Errorf("catalogue %s, entry %q: %w", path.Base(name), key, err)
		}
		if err := b.Set(l.tag, key, msg); err != nil {
			return nil, nil, fmt.Errorf("catalogue %s, entry %q: %w", path.Base(name), key, err)
		}
		plain[key] = other
	}
	return plain, plural, nil
}

// pluralForms are the forms an entry may give, in the order they are tried.
var pluralForms = []string{"=0", "=1", "zero", "one", "two", "few", "many", "other"}

// parseEntry reads "text" or {"one": "…", "other": "…", "arg": 2} (the
// plural form chosen by the arg-th argument, the first by default).
func parseEntry(raw json.RawMessage) (catalog.Message, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return catalog.String(s), s, nil
	}
	var forms map[string]any
	if err := json.Unmarshal(raw, &forms); err != nil {
		return nil, "", fmt.Errorf("neither a string nor plural forms: %w", err)
	}
	arg := 1
	if a, ok := forms["arg"].(float64); ok {
		arg = int(a)
	}
	other, _ := forms["other"].(string)
	if other == "" {
		return nil, "", fmt.Errorf(`plural forms without "other"`)
	}
	var cases []any
	for _, f := range pluralForms {
		if v, ok := forms[f].(string); ok {
			cases = append(cases, f, v)
		}
	}
	for k := range forms {
		if k != "arg" && !strings.HasPrefix(k, "=") && !contains(pluralForms, k) {
			return nil, "", fmt.Errorf("unknown plural form %q", k)
		}
	}
	return plural.Selectf(arg, "", cases...), other, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
