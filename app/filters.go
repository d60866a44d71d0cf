package app

import (
	"html/template"
	"strconv"
	"strings"

	"github.com/campus-saas/campus/store"
)

// The admin list's sidebar filters (Django's list_filter): by class, status
// and enrolment year, each value with the number of students holding it
// (store's facets: narrowed by the search and the other filters, 0 for a
// value of the school none of them holds), combinable with each other,
// the search, the sort and the page size. A filter's links keep everything
// else of the list and go to its first page.

// filterGroup is one filter of the sidebar.
type filterGroup struct {
	Title, Param string
	Choices      []filterChoice
	Items        template.HTML // filterItems(Choices)
}

// filterChoice is one value of a filter ("All" clears it).
type filterChoice struct {
	Label, URL string
	Count      int64 // -1: not counted ("All")
	Current    bool
}

func filterGroups(l *locale, p listParams, f store.Facets) []filterGroup {
	link := func(set func(*listParams)) string {
		q := p
		set(&q)
		return q.link(studentsURL, 1)
	}
	group := func(title, param, current string, facets []store.Facet, label func(string) string, set func(*listParams, string)) filterGroup {
		g := filterGroup{Title: l.T(title), Param: param}
		g.Choices = append(g.Choices, filterChoice{Label: l.T("All"), Count: -1, Current: current == "",
			URL: link(func(q *listParams) { set(q, "") })})
		for _, fc := range facets {
			if fc.Value == "" { // no class / no date: not a filter value
				continue
			}
			g.Choices = append(g.Choices, filterChoice{Label: label(fc.Value), Count: fc.Count, Current: current == fc.Value,
				URL: link(func(q *listParams) { set(q, fc.Value) })})
		}
		return g
	}
	year := ""
	if p.Year != 0 {
		year = strconv.Itoa(p.Year)
	}
	same := func(v string) string { return v }
	status := func(v string) string { return l.T(statusLabel(v)) }
	class := p.Class // as the sidebar spells it: one class whatever the case and spacing
	if key := store.ClassKey(class); key != "" {
		for _, fc := range f.Classes {
			if store.ClassKey(fc.Value) == key {
				class = fc.Value
			}
		}
	}
	var out []filterGroup // those with a value to choose
	for _, g := range []filterGroup{
		group("By class", "class", class, f.Classes, same, func(q *listParams, v string) { q.Class = v }),
		group("By status", "status", p.Status, f.Statuses, status, func(q *listParams, v string) { q.Status = v }),
		group("By enrolment year", "year", year, f.EnrolledYears, same, func(q *listParams, v string) { q.Year, _ = strconv.Atoi(v) }),
	} {
		if len(g.Choices) > 1 || !g.Choices[0].Current {
			g.Items = filterItems(l, g.Choices)
			out = append(out, g)
		}
	}
	return out
}

// statusLabel is a status for people: "enrolled" → "Enrolled".
func statusLabel(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// filterItems are the <li> of a filter's values, written in Go rather than
// by a {{range}} in the template (a school of 100 classes has 100 links on
// every list page; see list_rows.go for why): the same bytes the template
// would write (TestFilterItemsAsTemplate).
func filterItems(l *locale, choices []filterChoice) template.HTML {
	var b strings.Builder
	b.Grow(len(choices) * 90)
	for _, c := range choices {
		b.WriteString("\n    <li>")
		if c.Current {
			b.WriteString(`<strong aria-current="true">`)
			htmlEscape.WriteString(&b, c.Label)
			b.WriteString("</strong>")
		} else {
			b.WriteString(`<a href="`)
			htmlEscape.WriteString(&b, c.URL)
			b.WriteString(`">`)
			htmlEscape.WriteString(&b, c.Label)
			b.WriteString("</a>")
		}
		if c.Count >= 0 {
			b.WriteString(` <span class="text-body-secondary">(`)
			b.WriteString(l.T("%d", c.Count))
			b.WriteString(")</span>")
		}
		b.WriteString("</li>")
	}
	return template.HTML(b.String())
}
