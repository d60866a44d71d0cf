package app

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template/parse"
	"unicode"

	"golang.org/x/net/html"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// templateStrings walks every template: the keys of {{t "…"}} calls, and
// the text a person would read that is not inside one (text between tags
// and the attributes people read: title, placeholder, aria-label, alt,
// data-busy), outside <code>.
func templateStrings(t *testing.T) (keys map[string][]string, bare []string) {
	t.Helper()
	keys = map[string][]string{}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v", err)
	}
	for _, file := range files {
		src, err := fs.ReadFile(templateFS, file)
		if err != nil {
			t.Fatal(err)
		}
		trees := map[string]*parse.Tree{}
		tr := parse.New(file)
		tr.Mode = parse.SkipFuncCheck // the functions are the app's business
		if _, err := tr.Parse(string(src), "{{", "}}", trees); err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		for name, tree := range trees {
			var b strings.Builder
			w := &tmplWalker{out: &b, keys: keys, where: filepath.Base(file) + ":" + name}
			w.node(tree.Root)
			for _, s := range readableText(b.String()) {
				bare = append(bare, w.where+": "+strconv.Quote(s))
			}
		}
	}
	return keys, bare
}

type tmplWalker struct {
	out   *strings.Builder
	keys  map[string][]string
	where string
}

const hole = "\uE000" // where an action's output goes

func (w *tmplWalker) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.node(c)
		}
	case *parse.TextNode:
		w.out.Write(n.Text)
	case *parse.ActionNode:
		w.pipe(n.Pipe)
		w.out.WriteString(hole)
	case *parse.IfNode:
		w.branch(&n.BranchNode)
	case *parse.RangeNode:
		w.branch(&n.BranchNode)
	case *parse.WithNode:
		w.branch(&n.BranchNode)
	case *parse.TemplateNode:
		w.pipe(n.Pipe)
		w.out.WriteString(hole)
	}
}

func (w *tmplWalker) branch(b *parse.BranchNode) {
	w.pipe(b.Pipe)
	w.node(b.List)
	if b.ElseList != nil {
		w.node(b.ElseList)
	}
}

func (w *tmplWalker) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		if id, ok := c.Args[0].(*parse.IdentifierNode); ok && id.Ident == "t" {
			for _, a := range c.Args[1:] {
				w.keysIn(a)
			}
			continue
		}
		for _, a := range c.Args {
			switch a := a.(type) {
			case *parse.PipeNode:
				w.pipe(a)
			case *parse.StringNode:
				// A literal given to a function (a label, a help text)
				// is text a person reads if it looks like words.
				if strings.ContainsFunc(a.Text, unicode.IsUpper) || strings.Contains(a.Text, " ") {
					w.out.WriteString(hole + a.Text + hole)
				}
			}
		}
	}
}

// keysIn records the string literals of a t call's arguments as keys
// ({{t "Line"}}, {{t (or .Word "Line")}}).
func (w *tmplWalker) keysIn(n parse.Node) {
	switch n := n.(type) {
	case *parse.StringNode:
		w.keys[n.Text] = append(w.keys[n.Text], w.where)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				w.keysIn(a)
			}
		}
	}
}

var readableAttrs = map[string]bool{"title": true, "placeholder": true, "aria-label": true, "alt": true, "data-busy": true}

// readableText is the text with letters in an HTML fragment, outside
// <code> and the holes.
func readableText(fragment string) []string {
	var out []string
	check := func(s string) {
		s = strings.TrimSpace(strings.ReplaceAll(s, hole, " "))
		if strings.ContainsFunc(s, unicode.IsLetter) {
			out = append(out, s)
		}
	}
	z := html.NewTokenizer(strings.NewReader(fragment))
	code := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.TextToken:
			if code == 0 {
				check(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if string(name) == "code" {
				code++
			}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if readableAttrs[string(k)] {
					check(string(v))
				}
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "code" && code > 0 {
				code--
			}
		}
	}
}

// TestEveryTemplateStringTranslated fails when a template has text a
// person reads outside {{t "…"}}, or a {{t "…"}} key without a French or
// a Swahili entry: a new string cannot reach a page untranslated.
func TestEveryTemplateStringTranslated(t *testing.T) {
	keys, bare := templateStrings(t)
	for _, b := range bare {
		t.Errorf("text not wrapped in {{t \"…\"}}: %s", b)
	}
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: is the walk broken?", len(keys))
	}
	checkTranslated(t, keys)
}

// TestEveryGoMessageTranslated does the same for the messages of the Go
// code that reach a page: titles, breadcrumbs, error pages, flashes,
// form errors and the store's validation messages (goMessages says
// which literals count).
func TestEveryGoMessageTranslated(t *testing.T) {
	keys := goMessages(t)
	if len(keys) < 30 {
		t.Fatalf("found only %d messages: is the scan broken?", len(keys))
	}
	checkTranslated(t, keys)
}

// checkTranslated is checkLang in every language but English.
func checkTranslated(t *testing.T, keys map[string][]string) {
	t.Helper()
	for _, l := range i18n.Languages {
		if l.Code != i18n.Default {
			checkLang(t, l.Code, keys)
		}
	}
}

// checkLang fails on a key the language has no entry for, or whose entry
// has other Printf verbs.
func checkLang(t *testing.T, code string, keys map[string][]string) {
	t.Helper()
	l := i18n.Get(code)
	var missing []string
	for k, where := range keys {
		if !l.Has(k) {
			missing = append(missing, fmt.Sprintf("%q (%s)", k, where[0]))
			continue
		}
		if got, want := verbs(l.Entry(k)), verbs(k); got != want {
			t.Errorf("%s entry of %q has verbs %q, the key %q", code, k, got, want)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no %s entry for %s", code, m)
	}
}

// TestSwahiliPublicPages: Swahili covers every word of the public pages
// (their templates, the error pages a visitor meets, the list's messages,
// the publishable fields' labels and the status values, which a visitor
// reads in an address); the admin pages are checked in every language by
// TestEveryTemplateStringTranslated and TestEveryGoMessageTranslated.
func TestSwahiliPublicPages(t *testing.T) {
	all, _ := templateStrings(t)
	keys := map[string][]string{}
	for k, where := range all {
		for _, w := range where {
			for _, f := range []string{"base.html", "public_index.html", "public_private.html", "error.html", "_pager.html"} {
				if strings.HasPrefix(w, f+":") {
					keys[k] = where
				}
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys of the public templates: is the walk broken?", len(keys))
	}
	for _, code := range []int{400, 404, 500, 503} {
		keys[errorPages[code].Heading] = []string{"errorPages"}
		keys[errorPages[code].Message] = []string{"errorPages"}
	}
	keys[errorPages[404].LinkTxt] = []string{"errorPages"}
	for _, f := range store.PublicFieldChoices {
		keys[fieldLabels[f]] = []string{"fieldLabels"}
	}
	for _, v := range store.Statuses {
		keys[v] = []string{"store.Statuses"}
	}
	for _, k := range []string{"%d students", "Go to the first page of the list", "There is no page %d", "This list has %d pages.",
		"Go to the last page (%d)", "Too many to show on one page", "See it 100 a page",
		"“All” shows up to %d students on one page; this list has %d. Narrow it with a search or a filter, or see it in pages."} {
		keys[k] = []string{"listProblem"}
	}
	for _, f := range []string{msgNotAPage, msgNotAStatus, msgNotAYear, msgNotAPageSize} {
		keys[f] = []string{"listParamError"}
	}
	checkLang(t, "sw", keys)
}

var verbRE = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

// verbs are the Printf verbs of a format, sorted (a translation may
// reorder them with %[n]).
func verbs(format string) string {
	v := verbRE.FindAllString(format, -1)
	for i, s := range v {
		v[i] = s[len(s)-1:]
	}
	sort.Strings(v)
	return strings.Join(v, "")
}

// goMessages are the string literals of the app's and the store's Go code
// that reach a page: in the app, the fields Title, Heading, Message,
// LinkTxt, Label, Error, Notice and Failure of composite literals, the
// arguments of crumbs, the first of tr and T, the values assigned into
// error maps (…Errors[…], errs[…]), into the fields above and into the
// variables title, label, crumbLabel, msg and heading, the constants named msg…, the
// flashFormats and fieldLabels values and the results of importFailure;
// in the store, the results of Label and check… functions, the msg…
// constants, the messages assigned into field errors (fe[…]) and those
// PasswordProblems appends.
func goMessages(t *testing.T) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	add := func(fset *token.FileSet, e ast.Expr) {
		if c, ok := e.(*ast.CallExpr); ok && len(c.Args) > 0 {
			// A message built with values must be made from a format the
			// app can find again (store.ValueFormats, app: T's arguments).
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sprintf" {
				if _, lit := constString(c.Args[0]); lit {
					t.Errorf("%s: a message built with values from a literal format: make the format a msg… constant "+
						"listed in store.ValueFormats (in the store) or translate it with T (in the app)", fset.Position(e.Pos()))
				}
			}
			return
		}
		s, ok := constString(e)
		if !ok || !strings.ContainsFunc(s, unicode.IsLetter) {
			return
		}
		keys[s] = append(keys[s], fset.Position(e.Pos()).String())
	}
	scan := func(glob string, store bool) {
		files, _ := filepath.Glob(glob)
		fset := token.NewFileSet()
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			var fn string
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.FuncDecl:
					fn = n.Name.Name
				case *ast.ValueSpec:
					for i, name := range n.Names {
						if strings.HasPrefix(name.Name, "msg") && i < len(n.Values) {
							add(fset, n.Values[i])
						}
						if (name.Name == "flashFormats" || name.Name == "fieldLabels" || name.Name == "lockScopes" || name.Name == "userFieldLabels") && i < len(n.Values) {
							if cl, ok := n.Values[i].(*ast.CompositeLit); ok {
								for _, el := range cl.Elts {
									add(fset, el.(*ast.KeyValueExpr).Value)
								}
							}
						}
					}
				case *ast.ReturnStmt:
					if store && (fn == "Label" || strings.HasPrefix(fn, "check")) || !store && fn == "importFailure" {
						for _, r := range n.Results {
							add(fset, r)
						}
					}
				case *ast.CallExpr:
					name := ""
					switch f := n.Fun.(type) {
					case *ast.Ident:
						name = f.Name
					case *ast.SelectorExpr:
						name = f.Sel.Name
					}
					switch {
					case store && name == "append" && len(n.Args) > 1 && isNotes(n.Args[0]):
						for _, a := range n.Args[1:] {
							add(fset, a)
						}
					case store && name == "append" && strings.HasSuffix(fn, "Problems"):
						for _, a := range n.Args[1:] {
							add(fset, a)
						}
					case !store && name == "crumbs":
						for _, a := range n.Args {
							add(fset, a)
						}
					case !store && (name == "tr" || name == "T") && len(n.Args) > 0:
						i := 0
						if name == "tr" {
							i = 1
						}
						if i < len(n.Args) {
							add(fset, n.Args[i])
						}
					}
				case *ast.CompositeLit:
					if id, ok := n.Type.(*ast.Ident); ok && !store && id.Name == "listParamError" && len(n.Elts) > 0 {
						add(fset, n.Elts[0])
					}
				case *ast.KeyValueExpr:
					if id, ok := n.Key.(*ast.Ident); ok && store && id.Name == "Msg" {
						add(fset, n.Value)
					}
					if id, ok := n.Key.(*ast.Ident); ok && !store {
						switch id.Name {
						case "Title", "Heading", "Message", "LinkTxt", "Label", "Error", "Notice", "Failure":
							add(fset, n.Value)
						}
					}
				case *ast.AssignStmt:
					for i, lhs := range n.Lhs {
						if id, ok := lhs.(*ast.Ident); ok && !store && i < len(n.Rhs) {
							switch id.Name {
							case "title", "label", "crumbLabel", "msg", "heading":
								add(fset, n.Rhs[i])
							}
						}
						if sel, ok := lhs.(*ast.SelectorExpr); ok && !store && i < len(n.Rhs) {
							switch sel.Sel.Name {
							case "Error", "Notice", "Failure", "Message", "Heading":
								add(fset, n.Rhs[i])
							}
						}
						ix, ok := lhs.(*ast.IndexExpr)
						if !ok || i >= len(n.Rhs) {
							continue
						}
						var name string
						switch x := ix.X.(type) {
						case *ast.Ident:
							name = x.Name
						case *ast.SelectorExpr:
							name = x.Sel.Name
						}
						if !store && (strings.HasSuffix(name, "Errors") || name == "errs") || store && name == "fe" {
							add(fset, n.Rhs[i])
						}
					}
				}
				return true
			})
		}
	}
	scan("*.go", false)
	scan("../store/*.go", true)
	for _, f := range store.ValueFormats {
		keys[f] = append(keys[f], "store.ValueFormats")
	}
	return keys
}

// isNotes reports whether e is ….Notes (an import's notes).
func isNotes(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Notes"
}

// TestStoreMessagesWithValues: a message the store built with values
// (store.ValueFormats) shows in French with the same values, in the form
// errors and import notes alike, and stays as it is in English.
func TestStoreMessagesWithValues(t *testing.T) {
	fr := &locale{lang: i18n.Get("fr")}
	en := &locale{lang: i18n.Get("en")}
	samples := map[byte]any{'s': "2031-02-03", 'q': `KB/"7"`, 'd': 12}
	for _, format := range store.ValueFormats {
		var args []any
		for _, v := range verbRE.FindAllString(format, -1) {
			args = append(args, samples[v[len(v)-1]])
		}
		msg := fmt.Sprintf(format, args...)
		if got := en.storeMsg(msg); got != msg {
			t.Errorf("English %q became %q", msg, got)
		}
		want := fr.lang.T(format, args...)
		if got := fr.storeMsg(msg); got != want || got == msg {
			t.Errorf("French of %q:\n got %q\nwant %q", msg, got, want)
		}
	}
	// In a form, after the field's label; in an import row, after the column.
	fe := formErrors(fr, store.FieldErrors{"date_of_birth": `"2014-13-01" is not a date: write it as YYYY-MM-DD (e.g. 2014-03-09)`})
	if got, want := fe["date_of_birth"], `"2014-13-01" n’est pas une date : écrivez-la sous la forme AAAA-MM-JJ (par ex. 2014-03-09)`; got != want {
		t.Errorf("form error %q, want %q", got, want)
	}
	rows := rowErrorsIn(fr, []store.RowError{{Line: 3, Msg: `registration_no: "ab-1" already exists as "AB-1" (registration numbers are compared without case)`}})
	if got, want := rows[0].Msg, `registration_no: "ab-1" existe déjà sous la forme "AB-1" (les numéros d’inscription sont comparés sans tenir compte de la casse)`; got != want {
		t.Errorf("row error %q, want %q", got, want)
	}
}

// constString is a string literal, or literals joined with +.
func constString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := constString(e.X)
		y, ok2 := constString(e.Y)
		return x + y, ok1 && ok2
	case *ast.ParenExpr:
		return constString(e.X)
	}
	return "", false
}

// TestPluralsAndNumbers: counts choose the plural form and are written in
// the language's style.
func TestPluralsAndNumbers(t *testing.T) {
	en, fr := i18n.Get("en"), i18n.Get("fr")
	cases := []struct {
		lang *i18n.Lang
		n    int
		want string
	}{
		{en, 1, "1 student"}, {en, 2, "2 students"}, {en, 5000, "5,000 students"}, {en, 0, "0 students"},
		{fr, 1, "1 élève"}, {fr, 0, "0 élève"}, {fr, 2, "2 élèves"}, {fr, 5000, "5\u00a0000 élèves"},
	}
	for _, c := range cases {
		if got := c.lang.T("%d students", c.n); got != c.want {
			t.Errorf("%s: %%d students with %d = %q, want %q", c.lang.Code, c.n, got, c.want)
		}
	}
}
