package app

import (
	"html/template"
	"strconv"
	"strings"

	"github.com/campus-saas/campus/store"
)

// The rows of the student lists (50 a page, the hot path of a big school)
// are written here rather than by a {{range}} in the template: there,
// every field of every row costs reflection (a field look-up by name and
// a call of html/template's escaper through reflect.Value.Call), the
// largest share of a list request's CPU in the profile of `campus-bench
// school`. The output is byte for byte what the templates wrote
// (TestListRowsAsTemplates renders both): every value goes through
// htmlEscape, which is html/template's own escaping for text and quoted
// attributes; the only value in a URL is the back suffix, which
// url.Values.Encode made of URL-safe characters already.

// htmlEscape is html/template's escaping of text and of quoted attribute
// values (its htmlReplacementTable).
var htmlEscape = strings.NewReplacer("\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "+", "&#43;", "<", "&lt;", ">", "&gt;")

// publicRows are the rows of the public register's table, with the
// fields the school publishes (store.Settings.PublicFields) after the names.
// status, when not nil, words the status values in the page's language.
func publicRows(students []store.Student, fields []string, status map[string]string) template.HTML {
	var b strings.Builder
	b.Grow(len(students) * 120)
	for _, st := range students {
		b.WriteString("\n    <tr>\n      <td class=\"regno\">")
		htmlEscape.WriteString(&b, st.RegistrationNo)
		b.WriteString("</td>\n      <td>")
		htmlEscape.WriteString(&b, st.FirstName)
		b.WriteString("</td>\n      <td>")
		htmlEscape.WriteString(&b, st.SecondName)
		for _, f := range fields {
			b.WriteString("</td>\n      <td>")
			v := store.StudentField(st, f)
			if w, ok := status[v]; ok && f == "status" {
				v = w
			}
			htmlEscape.WriteString(&b, v)
		}
		b.WriteString("</td>\n    </tr>")
	}
	return template.HTML(b.String())
}

// adminRows are the rows of the admin list's table; suffix is the back
// link's (backLink.Suffix); selectable: with select boxes (the user may
// use an action); selectWord begins the select boxes' labels ("Select",
// in the page's language).
func adminRows(students []store.Student, suffix string, selectable bool, selectWord string) template.HTML {
	var b strings.Builder
	b.Grow(len(students) * 420)
	suffix = htmlEscape.Replace(suffix)
	selectWord = htmlEscape.Replace(selectWord)
	for _, st := range students {
		id := strconv.FormatInt(st.ID, 10)
		b.WriteString("\n    <tr>")
		if selectable {
			b.WriteString("\n      <td><input class=\"form-check-input row-select\" type=\"checkbox\" name=\"ids\" value=\"")
			b.WriteString(id)
			b.WriteString("\" id=\"select-")
			b.WriteString(id)
			b.WriteString("\"\n                 aria-label=\"")
			b.WriteString(selectWord)
			b.WriteString(" ")
			htmlEscape.WriteString(&b, st.FirstName)
			b.WriteString(" ")
			htmlEscape.WriteString(&b, st.SecondName)
			b.WriteString(" (")
			htmlEscape.WriteString(&b, st.RegistrationNo)
			b.WriteString(")\"></td>")
		}
		b.WriteString("\n      <th scope=\"row\"><a href=\"/admin/students/")
		b.WriteString(id)
		b.WriteString("/change/")
		b.WriteString(suffix)
		b.WriteString("\">")
		htmlEscape.WriteString(&b, st.RegistrationNo)
		b.WriteString("</a></th>\n      <td>")
		htmlEscape.WriteString(&b, st.FirstName)
		b.WriteString("</td>\n      <td>")
		htmlEscape.WriteString(&b, st.SecondName)
		b.WriteString("</td>\n    </tr>")
	}
	return template.HTML(b.String())
}
