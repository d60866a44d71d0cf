package i18n

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Patterns find which of some Printf formats (verbs %s, %q and %d) made a
// message, and with which values: a message made elsewhere in English
// ("\"2014-13-01\" is not a date: …", from the store) is then translated
// as its format with the same values.
// The expressions are compiled on the first Match: most apps translate
// no such message, and compiling them all cost a start ~1.6 MB.
type Patterns struct {
	list    []pattern
	compile sync.Once
}

type pattern struct {
	format string
	expr   string
	re     *regexp.Regexp
	verbs  []byte
}

// NewPatterns reads the formats; a verb other than %s, %q, %d and %% is a
// programming error.
func NewPatterns(formats ...string) *Patterns {
	p := &Patterns{}
	for _, f := range formats {
		var re strings.Builder
		var verbs []byte
		re.WriteString("^")
		lit := 0
		for i := 0; i < len(f); i++ {
			if f[i] != '%' || i+1 == len(f) {
				continue
			}
			re.WriteString(regexp.QuoteMeta(f[lit:i]))
			switch v := f[i+1]; v {
			case '%':
				re.WriteString("%")
			case 's':
				re.WriteString(`(.+?)`)
			case 'q':
				re.WriteString(`("(?:[^"\\]|\\.)*")`)
			case 'd':
				re.WriteString(`(-?[0-9]+)`)
			default:
				panic("i18n: verb %" + string(v) + " in pattern " + strconv.Quote(f))
			}
			if f[i+1] != '%' {
				verbs = append(verbs, f[i+1])
			}
			i++
			lit = i + 1
		}
		re.WriteString(regexp.QuoteMeta(f[lit:]) + "$")
		p.list = append(p.list, pattern{format: f, expr: re.String(), verbs: verbs})
	}
	return p
}

// Match returns the format that made msg and its values (strings and
// ints, as given to it), or false.
func (p *Patterns) Match(msg string) (string, []any, bool) {
	p.compile.Do(func() {
		for i := range p.list {
			p.list[i].re = regexp.MustCompile(p.list[i].expr)
		}
	})
	for _, pt := range p.list {
		m := pt.re.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		args := make([]any, len(pt.verbs))
		ok := true
		for i, v := range pt.verbs {
			s := m[i+1]
			switch v {
			case 's':
				args[i] = s
			case 'q':
				u, err := strconv.Unquote(s)
				args[i], ok = u, ok && err == nil
			case 'd':
				n, err := strconv.Atoi(s)
				args[i], ok = n, ok && err == nil
			}
		}
		if ok {
			return pt.format, args, true
		}
	}
	return "", nil, false
}
