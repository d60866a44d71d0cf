package store

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Derived fields kept in every student document (schema version 2), so
// that search and sorting ignore case and accents and the registration
// number is unique regardless of case. They are written by
// newStudentDoc and setStudentFields, never by hand.
const (
	fieldRegNoKey      = "registration_no_key" // registration number, lower-case
	fieldFirstNameKey  = "first_name_key"      // Fold(first_name)
	fieldSecondNameKey = "second_name_key"     // Fold(second_name)
	fieldSearch        = "search"              // Fold of all three, space-separated
	fieldClassKey      = "class_key"           // ClassKey(class)
)

// ClassKey is what tells classes apart: "form 2b", "Form 2B" and
// " Form  2B " are one class (spaces trimmed and collapsed, case and
// accents folded). A class is shown as a person typed it (trimmed, inner
// spaces collapsed: NormalizeStudent); filters, counts and the print
// view's groups compare keys.
func ClassKey(class string) string {
	// Most classes are ASCII ("Form 2B"): folded here without Fold's
	// Unicode transforms (a few µs and allocations each), the same result.
	var b strings.Builder
	b.Grow(len(class))
	space := false
	for i := 0; i < len(class); i++ {
		c := class[i]
		switch {
		case c >= utf8.RuneSelf:
			return Fold(strings.Join(strings.Fields(class), " "))
		case c == ' ' || c >= '\t' && c <= '\r':
			space = b.Len() > 0
		case c < ' ' || c == 0x7f: // a control character: Fold drops it
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// BetterSpelling tells whether a class written name by n students is
// shown rather than one written best by bestN: the spelling most students
// have, the first in byte order among equals.
func BetterSpelling(name string, n int, best string, bestN int) bool {
	return n > bestN || n == bestN && name < best
}

// maxSearchWords bounds the words of one query; more are ignored.
const maxSearchWords = 8

// Fold returns s as search and sorting compare it: decomposed, with the
// combining marks removed (é → e, Ñ → N), lower-cased and recomposed.
// Invalid UTF-8 and control characters are dropped. Letters that do not
// decompose (ø, ß, ł) are kept as they are, lower-cased.
func Fold(s string) string {
	if folded, ok := foldASCII(s); ok {
		return folded
	}
	return foldUnicode(s)
}

// foldASCII is Fold for ASCII text, most names and every registration
// number: the Unicode transforms leave ASCII as it is, so lower-casing
// and dropping control characters give the same result without their
// allocations (about 9 KB and 6 µs a call). ok is false for other text.
func foldASCII(s string) (folded string, ok bool) {
	plain := true // nothing to change: s is its own fold
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			return "", false
		case c < ' ' || c == 0x7f || 'A' <= c && c <= 'Z':
			plain = false
		}
	}
	if plain {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c == 0x7f:
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func foldUnicode(s string) string {
	s = strings.ToValidUTF8(s, "")
	// A transform.Chain keeps state, so each call builds its own.
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, out)
}

// regNoKey is what registration-number uniqueness compares: registration
// numbers are ASCII (checkRegNo), so lower-casing is exact.
func regNoKey(regNo string) string { return strings.ToLower(regNo) }

// searchText is the search field of a student.
func searchText(regNo, first, second string) string {
	return Fold(regNo + " " + first + " " + second)
}

// searchWords splits a query into folded words, without repeats; every
// word must occur in a student's search field for the student to match.
func searchWords(q string) []string {
	var words []string
	for _, w := range strings.Fields(Fold(q)) {
		if len(words) == maxSearchWords {
			break
		}
		if !containsString(words, w) {
			words = append(words, w)
		}
	}
	return words
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CleanQuery makes any text safe to search for: invalid UTF-8 and
// control characters (NUL included) are removed, spaces trimmed, and the
// result cut to at most maxBytes bytes on a character boundary.
func CleanQuery(q string, maxBytes int) string {
	q = strings.ToValidUTF8(q, "")
	q = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, q)
	q = strings.TrimSpace(q)
	if len(q) > maxBytes {
		cut := maxBytes
		for cut > 0 && !utf8.RuneStart(q[cut]) {
			cut--
		}
		q = strings.TrimSpace(q[:cut])
	}
	return q
}
