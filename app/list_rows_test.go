package app

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/campus-saas/campus/store"
)

// The {{range}} blocks the list templates had, as html/template escaped
// them: the rows written in Go must be the same bytes, whatever the
// names hold (markup, quotes, ampersands, plus signs, NUL, accents,
// invalid UTF-8) and whatever the back link (a search with & and +).
const (
	publicRowsTemplate = `{{- range .Students}}
    <tr>
      <td class="regno">{{.RegistrationNo}}</td>
      <td>{{.FirstName}}</td>
      <td>{{.SecondName}}</td>
    </tr>
  {{- end}}`
	adminRowsTemplate = `{{- range .Students}}
    <tr>
      {{- if $.Selectable}}
      <td><input class="form-check-input row-select" type="checkbox" name="ids" value="{{.ID}}" id="select-{{.ID}}"
                 aria-label="Select {{.FirstName}} {{.SecondName}} ({{.RegistrationNo}})"></td>
      {{- end}}
      <th scope="row"><a href="/admin/students/{{.ID}}/change/{{$.Back.Suffix}}">{{.RegistrationNo}}</a></th>
      <td>{{.FirstName}}</td>
      <td>{{.SecondName}}</td>
    </tr>
  {{- end}}`
)

func TestListRowsAsTemplates(t *testing.T) {
	t.Parallel()
	students := []store.Student{
		{ID: 1, RegistrationNo: "S/2026/001", FirstName: "Amina", SecondName: "Otieno"},
		{ID: 22, RegistrationNo: "X<1>", FirstName: `<script>alert("x")</script>`, SecondName: "O'Brien & Sons"},
		{ID: 333, RegistrationNo: "A+B", FirstName: "Zoë\x00", SecondName: "Ñúñez \xff\xfe"},
		{ID: 4444, RegistrationNo: "\"onmouseover=alert(1)", FirstName: "' autofocus onfocus='x", SecondName: "{{.}} `back`"},
	}
	pub := template.Must(template.New("public").Parse(publicRowsTemplate))
	adm := template.Must(template.New("admin").Parse(adminRowsTemplate))
	for _, back := range []backLink{{}, {Query: "q=amina"}, {Query: url.Values{"q": {"a&b +c <d> \"é\""}, "sort": {"-first_name"}, "page": {"3"}}.Encode()}} {
		for _, list := range [][]store.Student{nil, students[:1], students} {
			var want strings.Builder
			if err := pub.Execute(&want, struct{ Students []store.Student }{list}); err != nil {
				t.Fatal(err)
			}
			if got := string(publicRows(list, nil, nil)); got != want.String() {
				t.Errorf("public rows:\n%s\nwant (html/template):\n%s", got, want.String())
			}
			for _, selectable := range []bool{true, false} {
				want.Reset()
				if err := adm.Execute(&want, struct {
					Students   []store.Student
					Back       backLink
					Selectable bool
				}{list, back, selectable}); err != nil {
					t.Fatal(err)
				}
				if got := string(adminRows(list, back.Suffix(), selectable, "Select")); got != want.String() {
					t.Errorf("admin rows, back %q, selectable %v:\n%s\nwant (html/template):\n%s", back.Query, selectable, got, want.String())
				}
			}
		}
	}
}

// BenchmarkListRows compares the 50 rows of a list page written by the
// {{range}} the templates had (before) and in Go (after): go test ./app
// -run '^$' -bench ListRows -benchmem.
func BenchmarkListRows(b *testing.B) {
	var students []store.Student
	for i := range perPage {
		students = append(students, store.Student{ID: int64(50_000 + i), RegistrationNo: "U/2026/0" + strconv.Itoa(50_000+i),
			FirstName: "Zoë", SecondName: "Ñúñez" + strconv.Itoa(i)})
	}
	back := backLink{Query: "q=amina&sort=-first_name&page=3"}
	data := struct {
		Students   []store.Student
		Back       backLink
		Selectable bool
	}{students, back, true}
	for _, tc := range []struct {
		name string
		tmpl string
		rows func() template.HTML
	}{
		{"public", publicRowsTemplate, func() template.HTML { return publicRows(students, nil, nil) }},
		{"admin", adminRowsTemplate, func() template.HTML { return adminRows(students, back.Suffix(), true, "Select") }},
	} {
		t := template.Must(template.New(tc.name).Parse(tc.tmpl))
		b.Run(tc.name+"/template", func(b *testing.B) {
			var buf strings.Builder
			for b.Loop() {
				buf.Reset()
				if err := t.Execute(&buf, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/go", func(b *testing.B) {
			for b.Loop() {
				_ = tc.rows()
			}
		})
	}
}
