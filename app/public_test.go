package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestPublicPageShowsOnlyThisTenant(t *testing.T) {
	a := newEnv(t, "alpha", envOptions{})
	b := newEnv(t, "beta", envOptions{})
	a.addStudent("A-100", "Alice", "Alphason")
	b.addStudent("B-200", "Bob", "Betason")

	ra := a.browser().get("/")
	wantCode(t, ra, http.StatusOK)
	wantBody(t, ra, "<h1 class=\"mb-1\">School of alpha</h1>", "Alice", "Alphason", "A-100",
		`<th scope="col">Registration number</th>`, `<th scope="col">First name</th>`, `<th scope="col">Second name</th>`)
	wantNoBody(t, ra, "Bob", "B-200", "School of beta", `<th scope="col">ID</th>`)

	rb := b.browser().get("/")
	wantBody(t, rb, "Bob", "B-200")
	wantNoBody(t, rb, "Alice", "A-100")
}

func TestPublicEmptyStates(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	r := e.browser().get("/")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "No students yet")
	e.addStudent("S-1", "Sam", "Smith")
	r = e.browser().get("/?q=" + url.QueryEscape("zebra"))
	wantBody(t, r, "No students match “zebra”.")
	wantNoBody(t, r, "Sam")
}

func TestPublicSearch(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	e.addStudent("2024/001", "Wanjiru", "Kamau")
	e.addStudent("2024/002", "Kofi", "Mensah")
	e.addStudent("2023/777", "Ama", "Owusu")
	b := e.browser()
	tests := []struct {
		q       string
		want    []string
		wantNot []string
	}{
		{"kamau", []string{"Wanjiru"}, []string{"Kofi", "Ama"}},
		{"KOFI", []string{"Mensah"}, []string{"Wanjiru"}},
		{"2024/", []string{"Wanjiru", "Kofi"}, []string{"Owusu"}},
		{"777", []string{"Owusu"}, []string{"Kofi"}},
		{"  ama  ", []string{"Owusu"}, nil},
		{"(.*", nil, []string{"Wanjiru", "Kofi", "Owusu"}}, // regexp characters are literal
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			r := b.get("/?q=" + url.QueryEscape(tc.q))
			wantCode(t, r, http.StatusOK)
			wantBody(t, r, tc.want...)
			wantNoBody(t, r, tc.wantNot...)
		})
	}
}

func TestPublicPagination(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	for i := 1; i <= 51; i++ {
		e.addStudent(fmt.Sprintf("P-%03d", i), "Pupil", fmt.Sprintf("Number%03d", i))
	}
	b := e.browser()
	p1 := b.get("/")
	wantBody(t, p1, "P-001", "P-050", "1–50 of 51", `href="/?page=2"`, `aria-current="page"`)
	wantNoBody(t, p1, "P-051")
	if got := strings.Count(p1.body, "<td>Pupil</td>"); got != 50 {
		t.Errorf("page 1 has %d rows, want 50", got)
	}
	p2 := b.get("/?page=2")
	wantBody(t, p2, "P-051", "51–51 of 51", `href="/"`)
	wantNoBody(t, p2, "P-050")
	if got := strings.Count(p2.body, "<td>Pupil</td>"); got != 1 {
		t.Errorf("page 2 has %d rows, want 1", got)
	}
	// Past the end: a clear 404 naming the last page. Garbage: a clear 400.
	past := b.get("/?page=99")
	wantCode(t, past, http.StatusNotFound)
	wantBody(t, past, "There is no page 99", "This list has 2 pages.", `href="/?page=2"`)
	for _, bad := range []string{"-3", "0", "x"} {
		r := b.get("/?page=" + bad)
		wantCode(t, r, http.StatusBadRequest)
		wantBody(t, r, "is not a page number")
	}
	// The search is kept in page links.
	wantBody(t, b.get("/?q=pupil"), `href="/?page=2&amp;q=pupil"`)
}

func TestHTMLEscaping(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	const evil = "<script>alert(1)</script>"
	const escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
	st := e.addStudent("XSS-1", evil, `"><img src=x onerror=alert(2)>`)

	pub := e.browser().get("/")
	wantBody(t, pub, escaped)
	wantNoBody(t, pub, evil, "<img src=x")

	b := e.browser()
	b.login()
	for _, path := range []string{
		"/admin/students/",
		"/admin/students/?q=" + url.QueryEscape(evil),
		fmt.Sprintf("/admin/students/%d/change/", st.ID),
		fmt.Sprintf("/admin/students/%d/delete/", st.ID),
	} {
		r := b.get(path)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, escaped)
		wantNoBody(t, r, evil, "<img src=x")
	}
	// The search box echoes the query escaped, too.
	r := e.browser().get("/?q=" + url.QueryEscape(evil))
	wantNoBody(t, r, evil)
	// And the success message after adding such a student.
	r = b.follow(b.submit("/admin/students/add/", "/admin/students/add/", url.Values{
		"registration_no": {"XSS-2"}, "first_name": {evil}, "second_name": {"Two"}}))
	wantBody(t, r, "The student “"+escaped+" Two (XSS-2)” was added successfully.")
	wantNoBody(t, r, evil)
}
