package app

import (
	"net/http"
	"strings"
	"testing"
)

// TestPrintView: the print view holds every student of the list's search
// (all its pages, in its order), nothing else, and nothing of another
// school; bad list parameters are clear errors there too.
func TestPrintView(t *testing.T) {
	e := newEnv(t, "acme", envOptions{})
	other := newEnv(t, "other", envOptions{})
	e.fill(130)
	e.addStudent("K-1", "Keep", "Out")
	other.addStudent("O-1", "Other", "School")
	b := e.browser()
	b.login()
	list := b.get("/admin/students/?q=pupil&sort=-second_name&per_page=25&page=2")
	wantBody(t, list, `href="/admin/students/print/?q=pupil&amp;sort=-second_name" id="print-view"`)
	r := b.get("/admin/students/print/?q=pupil&sort=-second_name")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "130 students matching “pupil”", `class="print-group"`, `id="print-now"`)
	wantNoBody(t, r, "K-1", "O-1")
	if got := strings.Count(r.body, `<td class="regno">`); got != 130 {
		t.Errorf("%d rows printed, want 130", got)
	}
	// Sorted by second name descending: R-0001 (Zed0130) first.
	if i, j := strings.Index(r.body, ">R-0001<"), strings.Index(r.body, ">R-0130<"); i < 0 || j < 0 || i > j {
		t.Errorf("print order: R-0001 at %d, R-0130 at %d", i, j)
	}
	wantCode(t, b.get("/admin/students/print/?page=x"), http.StatusBadRequest)
}
