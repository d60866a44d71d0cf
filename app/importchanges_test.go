package app

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/campus-saas/campus/store"
)

// Issue 27: a student's history page shows what an update import changed
// of that student (each field, before → after), and what a bulk change
// of class from the actions menu changed; to whoever may see the page
// (a viewer too: the same fields as the student's page), never to a user
// without the view right; in French and Swahili. Cross-tenant: school B's student
// with the same ID shows none of A's changes.
func TestImportChangesOnStudentPage(t *testing.T) {
	re := newRightsEnv(t, "importdiff")
	other := newEnv(t, "importdiff-b", envOptions{})
	ctx := context.Background()
	boss, _ := re.as(t, "boss")
	importAs(t, boss, "add", "roster.csv", "registration_no,first_name,second_name,class\nI-1,Imani,Otieno,Form 1\n")
	pg, err := re.store.ListStudents(ctx, store.ListOptions{Query: "I-1"})
	if err != nil || len(pg.Students) != 1 {
		t.Fatalf("the imported student: %v %v", pg.Students, err)
	}
	id := pg.Students[0].ID
	page := "/admin/students/" + strconv.FormatInt(id, 10) + "/history/"
	// B: a student with the same ID, changed by its own import.
	for other.addStudent("B-0", "Bea", "Filler").ID < id-1 {
	}
	bIn := store.StudentInput{RegistrationNo: "B-1", FirstName: "Bea", SecondName: "Kamau", Class: "Grade 7"}
	bSt, err := other.store.CreateStudent(ctx, bIn)
	if err != nil || bSt.ID != id {
		t.Fatalf("the test wants the same ID in school B: %v %v (A: %d)", bSt, err, id)
	}

	staff, _ := re.as(t, "staffer")
	importAs(t, staff, "update", "fix.csv", "registration_no,first_name,second_name,class\nI-1,Imani,Wanjiru,Form 2\n")
	diff := []string{"Changed by import #2", "<del>Otieno</del>", ">Wanjiru</ins>", "<del>Form 1</del>", ">Form 2</ins>"}
	// A bulk change of class from the actions menu: old → new too.
	list := boss.get("/admin/students/?q=I-1")
	wantCode(t, boss.post("/admin/students/change-class/", map[string][]string{"csrf_token": {csrfOf(t, list.body)},
		"ids": {strconv.FormatInt(id, 10)}, "back": {"q=I-1"}, "confirm": {"yes"}, "class": {"Form 3"}}), http.StatusSeeOther)
	bulk := []string{"<del>Form 2</del>", ">Form 3</ins>"}

	for _, who := range []string{"boss", "staffer", "viewer"} {
		b, _ := re.as(t, who)
		r := b.get(page)
		wantCode(t, r, http.StatusOK)
		wantBody(t, r, append(diff, bulk...)...)
	}
	nobody, _ := re.as(t, "nobody")
	r := nobody.get(page)
	if r.code == http.StatusOK {
		t.Fatalf("a user without the view right reads the history: %d", r.code)
	}
	wantNoBody(t, r, "Wanjiru", "Otieno")

	// B's student with A's ID: its own history only.
	bb := other.browser()
	bb.login()
	r = bb.get(page)
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, "Kamau")
	wantNoBody(t, r, "Wanjiru", "Otieno", "Form 2", "Form 3", "by import")

	// French.
	frenchNairobi(t, re.env, false)
	r = boss.get(page)
	wantBody(t, r, append([]string{"Modifié par l’importation n° 2"}, diff[1:]...)...)
	wantBody(t, r, ">Nom :<", ">Classe :<") // the field names too (they were English on a French page)
	wantNoBody(t, r, "Changed by", "Second name", "Class:")
	// Swahili.
	speak(t, re.env, "sw", false)
	r = boss.get(page)
	wantBody(t, r, append([]string{"Alibadilishwa na uingizaji Na. 2", ">Jina la pili:<", ">Darasa:<"}, diff[1:]...)...)
	wantNoBody(t, r, "Changed by", "Second name", "Class:", "Modifié")
}
