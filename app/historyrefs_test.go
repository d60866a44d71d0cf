package app

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"

	"github.com/campus-saas/campus/store"
)

// importAs uploads csv as a file called name in mode and confirms it.
func importAs(t *testing.T, b *browser, mode, name, csv string) {
	t.Helper()
	p := b.get("/admin/students/import/")
	r := b.postMultipart("/admin/students/import/", map[string]string{"csrf_token": csrfOf(t, p.body), "mode": mode}, "file", csv)
	wantCode(t, r, http.StatusOK)
	c := b.postMultipart("/admin/students/import/", map[string]string{
		"csrf_token": csrfOf(t, r.body), "confirm": "yes",
		"mode":    regexpValue(t, r.body, "mode"),
		"plan":    regexpValue(t, r.body, "plan"),
		"payload": regexpValue(t, r.body, "payload"),
		"name":    name}, "", "")
	wantCode(t, c, http.StatusSeeOther)
	wantBody(t, awaitImport(t, b, c), "Successfully imported")
}

// Issue 27 (6): an imported student's history page names the import that
// created it and every import that changed it (file, mode, who, rows),
// linked to the import's entries on /admin/history/ for those who may see
// them there; never "added before history was kept"; in French too.
func TestImportedStudentHistory(t *testing.T) {
	re := newRightsEnv(t, "imported")
	ctx := context.Background()
	boss, _ := re.as(t, "boss")
	importAs(t, boss, "add", "class-4b.csv", "registration_no,first_name,second_name\nI-1,Imani,Otieno\nI-2,Baraka,Mwangi\n")
	pg, err := re.store.ListStudents(ctx, store.ListOptions{Query: "I-1"})
	if err != nil || len(pg.Students) != 1 {
		t.Fatalf("the imported student: %v %v", pg.Students, err)
	}
	id := pg.Students[0].ID
	page := "/admin/students/" + strconv.FormatInt(id, 10) + "/history/"
	r := boss.get(page)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Created by import #1", "File class-4b.csv, mode add new students, 2 rows", "boss", `href="/admin/history/?op=1"`)
	wantNoBody(t, r, "before history was kept")

	// Changed by hand, then by an update import of the staffer.
	wantCode(t, boss.submit(changeURL(id), changeURL(id), url.Values{
		"registration_no": {"I-1"}, "first_name": {"Imani"}, "second_name": {"Hand"}}), http.StatusSeeOther)
	staff, _ := re.as(t, "staffer")
	importAs(t, staff, "update", "fix.csv", "registration_no,first_name,second_name\nI-1,Imani,Wanjiru\n")
	r = boss.get(page)
	wantBody(t, r, "Created by import #1", "Changed", "Hand", "Changed by import #2", "File fix.csv, mode add and update, 1 row", "staffer",
		`href="/admin/history/?op=2"`)
	if i, j := regexp.MustCompile("Created by import").FindStringIndex(r.body), regexp.MustCompile("Changed by import #2").FindStringIndex(r.body); i == nil || j == nil || i[0] > j[0] {
		t.Fatal("the page is not oldest first")
	}
	// The link leads to the import's entry alone.
	h := boss.get("/admin/history/?op=2")
	wantCode(t, h, http.StatusOK)
	wantBody(t, h, "1 entry", "1 student", `id="history-op"`)
	wantNoBody(t, h, "2 students")
	wantCode(t, boss.get("/admin/history/?op=x"), http.StatusBadRequest)

	// The staffer sees who imported, but links only to their own import
	// (the history page shows them nothing else); the viewer no link.
	r = staff.get(page)
	wantBody(t, r, "Created by import #1", `href="/admin/history/?op=2"`)
	wantNoBody(t, r, `href="/admin/history/?op=1"`)
	viewer, _ := re.as(t, "viewer")
	r = viewer.get(page)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Created by import #1", "Changed by import #2")
	wantNoBody(t, r, `href="/admin/history/?op=`)
	wantBody(t, staff.get("/admin/history/?op=1"), "No actions match.")

	// French, in Nairobi's time.
	frenchNairobi(t, re.env, false)
	r = boss.get(page)
	wantBody(t, r, "Créé par l’importation n° 1", "Fichier class-4b.csv, mode ajout de nouveaux élèves, 2 lignes",
		"Modifié par l’importation n° 2", "1 ligne")
	wantNoBody(t, r, "Created by", "File ")

	// A student added by hand still has its own entry only.
	r = boss.get("/admin/students/" + strconv.FormatInt(re.studentID, 10) + "/history/")
	wantNoBody(t, r, "by import")
}
