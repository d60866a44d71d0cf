package store

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/campus-saas/campus/internal/commonpasswords"
)

// The password rules, Django's four validators (AUTH_PASSWORD_VALIDATORS
// of a new project) plus bcrypt's limit: at least MinPasswordLen
// characters; not too similar to the account's username or email (or a
// part of them); not one of the 20,000 common passwords Django ships
// (internal/commonpasswords); not entirely numeric; at most
// MaxPasswordBytes. One set of rules for the CLI (createsuperuser,
// changepassword) and the browser (add user, own password, a superuser
// setting another's, reset links), and every problem is reported at once.

// maxSimilarity is Django's UserAttributeSimilarityValidator default.
const maxSimilarity = 0.7

// PasswordProblems lists, in Django's words, every rule password breaks
// for an account with these attributes (username, email, names; empty
// ones are skipped). Nil means the password is acceptable.
func PasswordProblems(password string, attrs ...string) []string {
	var out []string
	if !utf8.ValidString(password) {
		return []string{"This password is not valid UTF-8 text."}
	}
	if utf8.RuneCountInString(password) < MinPasswordLen {
		out = append(out, "This password is too short. It must contain at least 8 characters.")
	}
	if len(password) > MaxPasswordBytes {
		out = append(out, "This password is too long. It must be at most 72 bytes.")
	}
	if attr, ok := tooSimilar(password, attrs); ok {
		out = append(out, "The password is too similar to the "+attr+".")
	}
	if commonpasswords.Contains(password) {
		out = append(out, "This password is too common.")
	}
	if password != "" && strings.IndexFunc(password, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		out = append(out, "This password is entirely numeric.")
	}
	return out
}

var nonWord = regexp.MustCompile(`\W+`)

// tooSimilar is Django's UserAttributeSimilarityValidator: the password
// against each attribute, whole and split at non-word characters, by
// difflib's quick_ratio (twice the characters in common over the total
// length); a part much shorter than the password is not compared. It
// names the attribute ("username", "email address").
func tooSimilar(password string, attrs []string) (string, bool) {
	pw := strings.ToLower(password)
	names := []string{"username", "email address", "name", "name"}
	for i, v := range attrs {
		if v == "" {
			continue
		}
		v = strings.ToLower(v)
		for _, part := range append(nonWord.Split(v, -1), v) {
			if part == "" || exceedsLengthRatio(pw, part) {
				continue
			}
			if quickRatio(pw, part) >= maxSimilarity {
				name := "name"
				if i < len(names) {
					name = names[i]
				}
				return name, true
			}
		}
	}
	return "", false
}

// exceedsLengthRatio is Django's exceeds_maximum_length_ratio.
func exceedsLengthRatio(password, value string) bool {
	pl, vl := utf8.RuneCountInString(password), utf8.RuneCountInString(value)
	return pl >= 10*vl && float64(vl) < maxSimilarity/2*float64(pl)
}

// quickRatio is difflib.SequenceMatcher(a, b).quick_ratio().
func quickRatio(a, b string) float64 {
	la, lb := utf8.RuneCountInString(a), utf8.RuneCountInString(b)
	if la+lb == 0 {
		return 1
	}
	avail := map[rune]int{}
	for _, r := range b {
		avail[r]++
	}
	matches := 0
	for _, r := range a {
		if avail[r] > 0 {
			avail[r]--
			matches++
		}
	}
	return 2 * float64(matches) / float64(la+lb)
}
