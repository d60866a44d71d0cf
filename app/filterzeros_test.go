package app

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/campus-saas/campus/store"
)

// TestZeroCountChoicesInSidebar: a search that leaves a class, a status or
// a year without students still offers it, with (0), as a link that
// lists nothing. Cross-tenant: school B, with the same student IDs and
// other classes, never offers A's classes, even at 0.
func TestZeroCountChoicesInSidebar(t *testing.T) {
	a := newEnv(t, "zeta", envOptions{})
	bEnv := newEnv(t, "theta", envOptions{})
	for i, c := range []string{"Form 1A", "Form 2B"} {
		in := store.StudentInput{RegistrationNo: fmt.Sprintf("Z-%d", i), FirstName: "Zawadi", SecondName: fmt.Sprintf("Kip%d", i),
			Class: c, EnrolledOn: fmt.Sprintf("202%d-01-06", i)}
		sa, err := a.store.CreateStudent(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		in.RegistrationNo, in.Class = fmt.Sprintf("T-%d", i), fmt.Sprintf("Grade %d", 7+i)
		sb, err := bEnv.store.CreateStudent(t.Context(), in)
		if err != nil || sb.ID != sa.ID {
			t.Fatalf("the test wants the same IDs in both schools: %v %v %v", sa, sb, err)
		}
	}
	b := a.browser()
	b.login()
	r := b.get("/admin/students/?q=kip0")
	wantCode(t, r, http.StatusOK)
	for _, tt := range []struct{ link, label, count string }{
		{"class=Form&#43;1A", "Form 1A", "(1)"},
		{"class=Form&#43;2B", "Form 2B", "(0)"},
		{"status=enrolled", "Enrolled", "(1)"},
		{"status=graduated", "Graduated", "(0)"},
		{"status=left", "Left", "(0)"},
		{"status=suspended", "Suspended", "(0)"},
		{"year=2020", "2020", "(1)"},
		{"year=2021", "2021", "(0)"},
	} {
		wantBody(t, r, tt.link, ">"+tt.label+`</a> <span class="text-body-secondary">`+tt.count+"</span>")
	}
	// A zero choice is a link that lists no student.
	r = b.get("/admin/students/?q=kip0&class=Form+2B")
	wantCode(t, r, http.StatusOK)
	if got := rowsOn(r.body); got != 0 {
		t.Errorf("the zero choice lists %d rows", got)
	}
	wantBody(t, r, `<strong aria-current="true">Form 2B</strong> <span class="text-body-secondary">(0)</span>`)

	bb := bEnv.browser()
	bb.login()
	for _, q := range []string{"?q=kip0", "?class=Form+1A", ""} {
		r := bb.get("/admin/students/" + q)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, `>Grade 8</a>`)
		wantNoBody(t, r, ">Form 1A<", ">Form 2B<", "Z-0", "Z-1")
	}
}
