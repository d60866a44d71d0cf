package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// campusSchool is the seeded default school; seedCampusSchool fills it.
var campusSchool = school{"default", "school.localhost"}

// seeded is how many students seedCampusSchool imports: three pages.
const seeded = 123

var seedOnce struct {
	sync.Once
	err error
}

// seedCampusSchool gives the default school a superuser and 123 students
// (imported with `campus manage`, not through the browser), once.
func seedCampusSchool(t *testing.T, sys *devSystem) {
	t.Helper()
	seedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "campus-e2e-seed-")
		if err != nil {
			seedOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		// The default school's students are in four classes, so that its
		// list has a class filter (and the README's picture of it).
		rows := studentRows("CS/24", seeded)
		var b strings.Builder
		b.WriteString("registration_no,first_name,second_name,class\n")
		for i, r := range rows {
			fmt.Fprintf(&b, "%s,%s,%s,Form %d\n", r[0], r[1], r[2], 1+i%4)
		}
		file := filepath.Join(dir, "seed.csv")
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			seedOnce.err = err
			return
		}
		if _, err := sys.campus(nil, "manage", campusSchool.tenant, "students", "import", file); err != nil {
			seedOnce.err = err
			return
		}
		seedOnce.err = sys.createSuperuser(campusSchool.tenant)
	})
	if seedOnce.err != nil {
		t.Fatalf("seed the default school: %v", seedOnce.err)
	}
}

// columnTexts is the text of one column of the admin list, top to bottom.
func (b *tab) columnTexts(col int) []string {
	b.t.Helper()
	return value(b, "read a column", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#changelist tbody tr")).map(r => r.children[`+strconv.Itoa(col)+`].innerText.trim())`))
}

// sortState is each column header's aria-sort ("" when none).
func (b *tab) sortState() map[string]string {
	b.t.Helper()
	return value(b, "read aria-sort", chromedp.Evaluate[map[string]string](
		`Object.fromEntries(Array.from(document.querySelectorAll("#changelist thead th a")).map(a =>
			[a.textContent.replace(/[▲▼]/g, "").trim(), a.closest("th").getAttribute("aria-sort") || ""]))`))
}

// TestAdminList works the admin list as a person would: sort by a column
// header (and see it announced with aria-sort), page through, search, and
// delete several students at once after a confirmation.
func TestAdminList(t *testing.T) {
	sys := system(t)
	seedCampusSchool(t, sys)
	b := newTab(t, sys, desktop)
	b.login(sys, campusSchool)

	b.open(campusSchool.url(sys, "/admin/students/"), http.StatusOK, "list")
	b.see("123 students, showing 1–50")
	if got := b.sortState(); got["Registration number"] != "ascending" || got["First name"] != "" || got["Second name"] != "" {
		t.Errorf("default sort: aria-sort %v, want registration number ascending only", got)
	}

	// Sort by first name, then the other way.
	b.press(`#changelist thead th:nth-child(3) a`, http.StatusOK, "sorted-first-name")
	if got := b.sortState(); got["First name"] != "ascending" || got["Registration number"] != "" {
		t.Errorf("after sorting by first name: aria-sort %v", got)
	}
	names := b.columnTexts(2)
	if !slices.IsSorted(names) || len(names) != 50 {
		t.Errorf("first names are not in ascending order: %v", names)
	}
	b.press(`#changelist thead th:nth-child(3) a`, http.StatusOK, "sorted-first-name-desc")
	if got := b.sortState(); got["First name"] != "descending" {
		t.Errorf("after sorting again: aria-sort %v", got)
	}
	desc := b.columnTexts(2)
	if !slices.IsSortedFunc(desc, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("first names are not in descending order: %v", desc)
	}

	// Pages keep the sort.
	b.press(`a[rel=next]`, http.StatusOK, "page-2")
	b.see("123 students, showing 51–100")
	if got := b.sortState(); got["First name"] != "descending" {
		t.Errorf("page 2 lost the sort: %v", got)
	}
	if got := b.textOf(`.pagination [aria-current=page]`); got != "2" {
		t.Errorf("current page marked %q, want 2", got)
	}
	b.press(`a[rel=next]`, http.StatusOK, "page-3")
	b.see("123 students, showing 101–123")
	if n := b.count(`a[rel=next]`); n != 0 {
		t.Error("the last page has a Next link")
	}

	// Four students leave: find them, select all but one, delete those
	// three at once after the confirmation, then the last one.
	leavers := writeCSV(t, t.TempDir(), "leavers.csv", studentRows("ZZ/LEAVER", 4))
	if _, err := sys.campus(nil, "manage", campusSchool.tenant, "students", "import", leavers); err != nil {
		t.Fatal(err)
	}
	b.open(campusSchool.url(sys, "/admin/students/"), http.StatusOK, "list-again")
	b.see("127 students")
	b.fill("#q", "LEAVER")
	b.press(`form[role=search] button[type=submit]`, http.StatusOK, "search")
	b.see("4 matching “LEAVER”")
	b.step("select all", chromedp.Click(chromedp.CSS("#select-all")))
	if got := b.textOf("#selected-count"); got != "4 selected" {
		t.Errorf("after select all: %q", got)
	}
	b.step("unselect one", chromedp.Click(chromedp.CSS(`#changelist tbody tr:first-child input.row-select`)))
	if got := b.textOf("#selected-count"); got != "3 selected" {
		t.Errorf("after unselecting one: %q", got)
	}
	b.shot("selected")
	b.press(`#changelist button[type=submit]`, http.StatusOK, "bulk-delete-confirm")
	b.see("Are you sure you want to delete the selected 3 students?", "ZZ/LEAVER/00002", "ZZ/LEAVER/00004")
	b.dontSee("ZZ/LEAVER/00001")
	b.press(`form[action="/admin/students/delete-selected/"] button.btn-danger`, http.StatusOK, "bulk-deleted")
	if got := b.textOf("#flash"); got != "Successfully deleted 3 students." {
		t.Errorf("after the bulk delete: %q", got)
	}
	// Back on the list as it was: the search is kept.
	b.see("1 matching “LEAVER”", "ZZ/LEAVER/00001")
	if got := b.attr("#q", "value"); got != "LEAVER" {
		t.Errorf("after the bulk delete the search box holds %q", got)
	}

	// Pressing the bulk button with nothing selected changes nothing.
	b.press(`#changelist button[type=submit]`, http.StatusOK, "bulk-none-selected")
	b.see("Students must be selected in order to perform actions on them.", "1 matching “LEAVER”")

	b.open(campusSchool.url(sys, "/admin/students/?q=LEAVER"), http.StatusOK, "last-leaver")
	b.step("select the last", chromedp.Click(chromedp.CSS(`#changelist tbody input.row-select`)))
	b.press(`#changelist button[type=submit]`, http.StatusOK, "delete-one-confirm")
	b.see("Are you sure you want to delete the selected student?", "ZZ/LEAVER/00001")
	b.press(`form[action="/admin/students/delete-selected/"] button.btn-danger`, http.StatusOK, "deleted-one")
	if got := b.textOf("#flash"); got != "Successfully deleted 1 student." {
		t.Errorf("after deleting one: %q", got)
	}
	if got := exportedRows(t, sys, campusSchool.tenant); got != seeded {
		t.Errorf("the database holds %d students, want %d", got, seeded)
	}
}
