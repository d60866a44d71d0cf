package app

import (
	"html/template"
	"net/url"
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
      <td><input class="form-check-input row-select" type="checkbox" name="ids" value="{{.ID}}" id="select-{{.ID}}"
                 aria-label="Select {{.FirstName}} {{.SecondName}} ({{.RegistrationNo}})"></td>
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
			if got := string(publicRows(list)); got != want.String() {
				t.Errorf("public rows:\n%s\nwant (html/template):\n%s", got, want.String())
			}
			want.Reset()
			if err := adm.Execute(&want, struct {
				Students []store.Student
				Back     backLink
			}{list, back}); err != nil {
				t.Fatal(err)
			}
			if got := string(adminRows(list, back.Suffix())); got != want.String() {
				t.Errorf("admin rows, back %q:\n%s\nwant (html/template):\n%s", back.Query, got, want.String())
			}
		}
	}
}
