package app

import (
	"context"
	"html"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"text/template/parse"
	"time"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// Languages and time (issue 27 item 7). A page is in the school's language
// (store.Settings.Language), or in the supported language the visitor's
// Accept-Language prefers when the school allows it; every time on it is
// shown in the school's time zone (times are stored in UTC). The settings
// live in the school's own database, so nothing of one school can reach
// another's pages.

// locale is the language and zone of one request's pages.
type locale struct {
	lang     *i18n.Lang
	zone     *time.Location
	zoneName string
	byHeader bool // the visitor's Accept-Language may choose (Vary)
}

func (l *locale) T(key string, args ...any) string { return l.lang.T(key, args...) }

// storeMsg translates a message of the store: one built with values
// (store.ValueFormats) as its format with its values, others as T does.
// Only the store's messages go through it, never a student's name or
// another value a person typed.
func (l *locale) storeMsg(msg string) string {
	if l.lang.Code != i18n.Default && !l.lang.Has(msg) {
		if format, vals, ok := storeMessages.Match(msg); ok {
			return l.lang.T(format, vals...)
		}
	}
	return l.lang.T(msg)
}

// storeMessages find the format and values of the store's messages.
var storeMessages = i18n.NewPatterns(store.ValueFormats...)

// when writes a time for people in the school's zone.
func (l *locale) when(t time.Time) string { return l.lang.When(t, l.zone) }

// settingsTTL is how long an instance trusts the settings it read: a
// change saved on another instance of the school applies there within it
// (on this one, at once).
const settingsTTL = time.Second

type cachedSettings struct {
	set store.Settings
	at  time.Time
}

// settingsCache spares the admin pages a database read per request for
// the language and zone.
type settingsCache struct {
	p atomic.Pointer[cachedSettings]
}

// cachedSettings returns the school's settings, read at most settingsTTL ago.
func (s *server) cachedSettings(ctx context.Context) (store.Settings, error) {
	now := time.Now()
	if c := s.settings.p.Load(); c != nil && now.Sub(c.at) < settingsTTL && !now.Before(c.at) {
		return c.set, nil
	}
	set, err := s.store.Settings(ctx)
	if err != nil {
		return store.Settings{}, err
	}
	s.settings.p.Store(&cachedSettings{set: set, at: now})
	return set, nil
}

// forgetSettings makes the next request read the settings again.
func (s *server) forgetSettings() { s.settings.p.Store(nil) }

// locale is the request's language and zone, chosen once per request. If
// the settings cannot be read, the page is in the default language and
// UTC (the page will most likely be an error page anyway).
func (s *server) locale(r *http.Request) *locale {
	st := stateOf(r)
	if st.locale != nil {
		return st.locale
	}
	set, err := s.cachedSettings(r.Context())
	if err != nil {
		s.log.Warn("settings unreadable: page in the default language and zone", "request_id", st.id, "err", err)
	}
	code := i18n.Choose(set.Language, set.AcceptLanguage, r.Header.Get("Accept-Language"))
	zoneName := set.TimeZone
	zone, err := i18n.LoadZone(zoneName)
	if err != nil {
		zone, zoneName = time.UTC, i18n.DefaultZone
	}
	st.locale = &locale{lang: i18n.Get(code), zone: zone, zoneName: zoneName, byHeader: set.AcceptLanguage}
	return st.locale
}

// tr translates a message of the Go code for the request's page.
func (s *server) tr(r *http.Request, key string, args ...any) string {
	return s.locale(r).T(key, args...)
}

// localeFuncs are the template functions that depend on the locale.
func localeFuncs(l *locale) template.FuncMap {
	return template.FuncMap{
		"t":    l.T,
		"num":  func(n any) string { return l.T("%d", n) },
		"when": l.when,
		"lang": func() string { return l.lang.Code },
	}
}

// inlineTranslations replaces each {{t "literal"}} of a locale's clone by
// its translation as HTML text, so that the page's fixed words cost what
// they cost before there were languages: no function call and no
// escaping per request. html/template escapes the clone afterwards, and
// the text (escaped here, with no < or quote left) changes no context.
func inlineTranslations(n parse.Node, l *locale) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for i, c := range n.Nodes {
			if key, ok := literalT(c); ok {
				n.Nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: c.Position(), Text: []byte(html.EscapeString(l.T(key)))}
				continue
			}
			inlineTranslations(c, l)
		}
	case *parse.IfNode:
		inlineTranslations(n.List, l)
		inlineTranslations(n.ElseList, l)
	case *parse.RangeNode:
		inlineTranslations(n.List, l)
		inlineTranslations(n.ElseList, l)
	case *parse.WithNode:
		inlineTranslations(n.List, l)
		inlineTranslations(n.ElseList, l)
	}
}

// literalT is the key of an action {{t "key"}} (nothing else in it).
func literalT(n parse.Node) (string, bool) {
	a, ok := n.(*parse.ActionNode)
	if !ok || len(a.Pipe.Decl) > 0 || len(a.Pipe.Cmds) != 1 || len(a.Pipe.Cmds[0].Args) != 2 {
		return "", false
	}
	args := a.Pipe.Cmds[0].Args
	if id, ok := args[0].(*parse.IdentifierNode); !ok || id.Ident != "t" {
		return "", false
	}
	s, ok := args[1].(*parse.StringNode)
	if !ok {
		return "", false
	}
	return s.Text, true
}

// statusWords are the status values in the locale's language, for the
// public page's rows (nil in English: the values as stored).
func statusWords(l *locale) map[string]string {
	if l.lang.Code == i18n.Default {
		return nil
	}
	m := make(map[string]string, len(store.Statuses))
	for _, v := range store.Statuses {
		m[v] = l.T(v)
	}
	return m
}

// rowErrorsIn words an import's row errors in the page's language: the
// store writes "first_name: is required; class: must be at most 40
// characters" (column names as the file's header has them, kept as they
// are); each message after a column is translated.
func rowErrorsIn(l *locale, errs []store.RowError) []store.RowError {
	if l.lang.Code == i18n.Default || len(errs) == 0 {
		return errs
	}
	out := make([]store.RowError, len(errs))
	for i, e := range errs {
		parts := strings.Split(e.Msg, "; ")
		for j, p := range parts {
			if col, msg, ok := strings.Cut(p, ": "); ok && !strings.Contains(col, " ") {
				parts[j] = col + ": " + l.storeMsg(msg)
			} else {
				parts[j] = l.storeMsg(p)
			}
		}
		e.Msg = strings.Join(parts, "; ")
		out[i] = e
	}
	return out
}

// localeViews are the pages of one locale: clones of the parsed pages with
// the locale's functions. They are made on first use and kept; a school
// has one zone at a time and a handful of languages, so there are few.
type localeViews struct {
	mu   sync.Mutex
	sets map[localeKey]map[string]*template.Template
}

type localeKey struct{ lang, zone string }

// maxLocaleSets bounds the kept sets (zones changed many times).
const maxLocaleSets = 32
