package store

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on input.
const (
	MaxRegNoLen       = 64  // characters of a registration number
	MaxNameLen        = 255 // characters of a first or second name
	MaxUsernameLen    = 150 // characters of a username
	MinPasswordLen    = 8   // characters of a password
	MaxPasswordBytes  = 72  // bcrypt ignores anything longer
	maxEmailLen       = 254
	msgRegNo          = "must be 1-64 letters, digits, '-', '/' or '.'"
	msgUsernameFormat = "must be 1-150 letters, digits and @/./+/-/_ only"
)

// NormalizeStudent trims and validates input (dates as of today, UTC).
// The FieldErrors are nil when the input is valid.
func NormalizeStudent(in StudentInput) (StudentInput, FieldErrors) {
	return normalizeStudentAt(in, time.Now().UTC())
}

func normalizeStudentAt(in StudentInput, today time.Time) (StudentInput, FieldErrors) {
	out := StudentInput{
		RegistrationNo: strings.TrimSpace(in.RegistrationNo),
		FirstName:      strings.TrimSpace(in.FirstName),
		SecondName:     strings.TrimSpace(in.SecondName),
	}
	fe := FieldErrors{}
	if msg := checkRegNo(out.RegistrationNo); msg != "" {
		fe["registration_no"] = msg
	}
	if msg := checkName(out.FirstName); msg != "" {
		fe["first_name"] = msg
	}
	if msg := checkName(out.SecondName); msg != "" {
		fe["second_name"] = msg
	}
	normalizeRecord(in, &out, fe, today)
	if len(fe) > 0 {
		return out, fe
	}
	return out, nil
}

func checkRegNo(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > MaxRegNoLen {
		return msgRegNo
	}
	for _, c := range []byte(s) {
		if !isASCIIAlnum(c) && c != '-' && c != '/' && c != '.' {
			return msgRegNo
		}
	}
	return ""
}

func checkName(s string) string {
	switch {
	case s == "":
		return "is required"
	case !utf8.ValidString(s):
		return "is not valid UTF-8 text"
	case utf8.RuneCountInString(s) > MaxNameLen:
		return "must be at most 255 characters"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "must not contain control characters such as line breaks or tabs"
	case !strings.ContainsFunc(s, isVisible):
		return "must contain letters: it has only invisible characters (such as zero-width spaces or direction marks)"
	}
	return ""
}

// invisibleLetters are letters (category Lo) that fonts draw as blanks.
const invisibleLetters = "\u115F\u1160\u3164\uFFA0\u2800"

// isVisible reports whether r draws something: not a format character
// (Cf: U+200B, U+202E…), separator (Z*), combining mark alone, or a
// blank filler letter.
func isVisible(r rune) bool {
	return !unicode.In(r, unicode.Cf, unicode.Z, unicode.Mn, unicode.Me) && !unicode.IsSpace(r) &&
		!strings.ContainsRune(invisibleLetters, r)
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// normalizeUsername trims a username; usernameKey is what uniqueness and
// look-ups use.
func normalizeUsername(s string) string { return strings.TrimSpace(s) }

func usernameKey(s string) string { return strings.ToLower(normalizeUsername(s)) }

// checkUsername allows ASCII letters and digits only (with @.+-_), so that
// look-alike letters from other scripts cannot imitate another admin.
func checkUsername(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > MaxUsernameLen {
		return msgUsernameFormat
	}
	for _, c := range []byte(s) {
		if !isASCIIAlnum(c) && !strings.ContainsRune("@.+-_", rune(c)) {
			return msgUsernameFormat
		}
	}
	return ""
}

// checkEmail accepts "" (no email) or one plain address.
func checkEmail(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > maxEmailLen {
		return "must be at most 254 characters"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "must be a valid email address"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n<>") {
		return "must be a valid email address"
	}
	return ""
}

// checkPassword applies the password rules (passwords.go) to a password
// of the account with these attributes (username, email): every problem,
// one sentence a line, or "".
func checkPassword(password string, attrs ...string) string {
	return strings.Join(PasswordProblems(password, attrs...), "\n")
}

// ValidateSuperuser checks what CreateSuperuser would check of its input
// without a database: callers that must not write anything before all
// input is known good (campus tenant create --superuser) call it first.
// The FieldErrors are nil when the input is valid.
func ValidateSuperuser(username, email, password string) FieldErrors {
	username, email = normalizeUsername(username), strings.TrimSpace(email)
	fe := FieldErrors{}
	if msg := checkUsername(username); msg != "" {
		fe["username"] = msg
	}
	if msg := checkEmail(email); msg != "" {
		fe["email"] = msg
	}
	if msg := checkPassword(password, username, email); msg != "" {
		fe["password"] = msg
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}
