package app

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campus-saas/campus/app/i18n"
	"github.com/campus-saas/campus/store"
)

// frenchNairobi sets a school to French and Africa/Nairobi through the
// settings form, as its superuser would.
func frenchNairobi(t *testing.T, e *env, acceptLanguage bool) *browser {
	t.Helper()
	return speak(t, e, "fr", acceptLanguage)
}

// speak sets e's school's language to code, in Nairobi's time (and lets
// each visitor's browser choose when acceptLanguage), and returns a
// logged-in browser.
func speak(t *testing.T, e *env, code string, acceptLanguage bool) *browser {
	t.Helper()
	b := e.browser()
	b.login()
	form := url.Values{"language": {code}, "time_zone": {"Africa/Nairobi"}}
	if acceptLanguage {
		form.Set("accept_language", "on")
	}
	r := b.submit("/admin/settings/", "/admin/settings/locale/", form)
	if r.code != http.StatusSeeOther {
		t.Fatalf("save settings: %d\n%s", r.code, r.body)
	}
	return b
}

func TestLocaleSettingsForm(t *testing.T) {
	e := newEnv(t, "lyon", envOptions{})
	b := e.browser()
	b.login()
	page := b.get("/admin/settings/")
	wantBody(t, page, `<html lang="en">`, `id="locale-form"`, `value="UTC"`, `<option value="fr">Français</option>`)

	// Bad input: a message on the field, nothing saved, the page in the
	// language still in force.
	for _, c := range []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"language": {"fr"}, "time_zone": {"Mars/Olympus"}}, "Enter a time zone of the IANA database"},
		{url.Values{"language": {"fr"}, "time_zone": {"Local"}}, "Enter a time zone of the IANA database"},
		{url.Values{"language": {"de"}, "time_zone": {"UTC"}}, "Choose a language from the list."},
	} {
		r := b.submit("/admin/settings/", "/admin/settings/locale/", c.form)
		wantCode(t, r, http.StatusUnprocessableEntity)
		wantBody(t, r, c.msg, `<html lang="en">`)
	}
	if set, err := e.store.Settings(context.Background()); err != nil || set.Language != "" || set.TimeZone != "" {
		t.Fatalf("bad input saved something: %+v, %v", set, err)
	}

	b = frenchNairobi(t, e, false)
	r := b.get("/admin/settings/")
	wantBody(t, r, `<html lang="fr">`, "Réglages du site", "Les réglages ont été enregistrés.", `value="Africa/Nairobi"`,
		`<option value="fr" selected>Français</option>`)
	// A form error in French; the page still says it in French.
	r = b.submit("/admin/students/add/", "/admin/students/add/", url.Values{"registration_no": {""}, "first_name": {"Amina"}, "second_name": {"Njeri"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "Ce champ est obligatoire.", "Veuillez corriger l’erreur ci-dessous.")
	// Messages built with values: a date, a list's bad parameter.
	r = b.submit("/admin/students/add/", "/admin/students/add/", url.Values{"registration_no": {"L1"}, "first_name": {"Amina"},
		"second_name": {"Njeri"}, "date_of_birth": {"2014-13-01"}})
	wantCode(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "2014-13-01&#34; n’est pas une date : écrivez-la sous la forme AAAA-MM-JJ")
	for _, path := range []string{"/admin/students/?page=x", "/?page=x"} {
		r = b.get(path)
		wantCode(t, r, http.StatusBadRequest)
		wantBody(t, r, "« x » n’est pas un numéro de page : les pages sont numérotées à partir de 1.")
	}
	// History objects: a user, a group in French; a student named like
	// one stays as written.
	addStaff(t, b, "alice", false)
	wantCode(t, b.submit("/admin/groups/add/", "/admin/groups/add/", url.Values{"name": {"Auditors"}, "permissions": {"view_student"}}), http.StatusSeeOther)
	wantCode(t, b.submit("/admin/students/add/", "/admin/students/add/", url.Values{"registration_no": {"U1"}, "first_name": {"user"},
		"second_name": {"Bob"}}), http.StatusSeeOther)
	for _, path := range []string{"/admin/history/", "/admin/"} {
		h := b.get(path)
		wantBody(t, h, "utilisateur alice", "groupe Auditors", "user Bob (U1)")
		if strings.Contains(h.body, "group Auditors") {
			t.Errorf("%s: the group's entry in English", path)
		}
	}
	// The 404 and 403 pages.
	wantBody(t, b.get("/admin/nothing-here/"), "Page introuvable", "Il n’y a pas de page à cette adresse")
	wantBody(t, e.browser().get("/nothing-here"), "Page introuvable", `<html lang="fr">`)
}

func TestAcceptLanguageWhereAllowed(t *testing.T) {
	e := newEnv(t, "geneva", envOptions{})
	e.addStudent("G1", "Amina", "Njeri")
	anon := e.browser()
	// Default school: English whatever the browser says.
	r := anon.get("/", "Accept-Language", "fr-FR,fr;q=0.9")
	wantBody(t, r, `<html lang="en">`, "Student register", "Students:")
	if r.header.Get("Content-Language") != "en" || strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Accept-Language") {
		t.Errorf("fixed language: Content-Language %q, Vary %q", r.header.Get("Content-Language"), r.header.Values("Vary"))
	}
	if err := e.store.SetLocale(context.Background(), "en", true, "UTC"); err != nil {
		t.Fatal(err)
	}
	e.app.forgetSettings()
	r = anon.get("/", "Accept-Language", "fr-FR,fr;q=0.9")
	wantBody(t, r, `<html lang="fr">`, "Registre des élèves", "Élèves")
	if r.header.Get("Content-Language") != "fr" || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Accept-Language") {
		t.Errorf("negotiated page: Content-Language %q, Vary %q", r.header.Get("Content-Language"), r.header.Values("Vary"))
	}
	r = anon.get("/", "Accept-Language", "de-DE")
	wantBody(t, r, `<html lang="en">`, "Student register")
	r = anon.get("/")
	wantBody(t, r, `<html lang="en">`)
	// The login page too.
	wantBody(t, anon.get("/admin/login/", "Accept-Language", "fr"), "Identifiant", "Mot de passe", `<html lang="fr">`)
}

// TestLocaleCrossTenant: school A in French and Africa/Nairobi; school B
// unchanged. A's language and zone never reach B's pages or exports,
// whatever B's visitors' browsers ask for, and B's never reach A's.
func TestLocaleCrossTenant(t *testing.T) {
	a := newEnv(t, "nakuru", envOptions{})
	bEnv := newEnv(t, "kisumu", envOptions{})
	ab := frenchNairobi(t, a, false)
	bb := bEnv.browser()
	bb.login()
	add := url.Values{"registration_no": {"S1"}, "first_name": {"Amina"}, "second_name": {"Njeri"}, "_save": {"1"}}
	for _, br := range []*browser{ab, bb} {
		if r := br.submit("/admin/students/add/", "/admin/students/add/", add); r.code != http.StatusSeeOther {
			t.Fatalf("add: %d\n%s", r.code, r.body)
		}
	}
	// The clock says 9:00 UTC on 1 March 2025: 12:00 in Nairobi.
	home := ab.get("/admin/")
	wantBody(t, home, `<html lang="fr">`, "Actions récentes", "1 mars 2025 à 12:00 EAT")
	wantNoBody(t, home, "09:00", "UTC")
	for _, hdr := range [][]string{nil, {"Accept-Language", "fr-FR,fr;q=0.9"}} {
		home = bb.get("/admin/", hdr...)
		wantBody(t, home, `<html lang="en">`, "Recent actions", "1 Mar 2025, 09:00 UTC")
		wantNoBody(t, home, "EAT", "mars", "Actions récentes")
		pub := bEnv.browser().get("/", hdr...)
		wantBody(t, pub, `<html lang="en">`, "Student register")
		wantNoBody(t, pub, "Registre", "élève")
	}
	pub := a.browser().get("/", "Accept-Language", "en")
	wantBody(t, pub, `<html lang="fr">`, "Registre des élèves", "Élèves:")

	// Exports: A's history CSV carries Nairobi's offset, B's UTC.
	ax := ab.get("/admin/history/export/")
	bx := bb.get("/admin/history/export/")
	wantCode(t, ax, http.StatusOK)
	wantCode(t, bx, http.StatusOK)
	if !strings.Contains(ax.body, "2025-03-01T12:00:00+03:00") || strings.Contains(ax.body, "Z,") {
		t.Errorf("A's export is not in Nairobi's zone:\n%s", ax.body)
	}
	if !strings.Contains(bx.body, "2025-03-01T09:00:00Z") || strings.Contains(bx.body, "+03:00") {
		t.Errorf("B's export is not in UTC:\n%s", bx.body)
	}
	// A date filter is a day in the school's zone: at A, 1 March
	// (Nairobi) holds the entry.
	wantBody(t, ab.get("/admin/history/?from=2025-03-01&until=2025-03-01"), "1 mars 2025 à 12:00 EAT")
	set, err := bEnv.store.Settings(context.Background())
	if err != nil || set.Language != "" || set.TimeZone != "" || set.AcceptLanguage {
		t.Errorf("B's settings changed: %+v, %v", set, err)
	}
}

func TestRowErrorsInFrench(t *testing.T) {
	fr := &locale{lang: i18n.Get("fr")}
	got := rowErrorsIn(fr, []store.RowError{
		{Line: 3, Msg: "registration_no: is required; first_name: must be at most 255 characters"},
		{Line: 4, Msg: "expected 3 fields (as the header has), found 5"},
		{Line: 5, Msg: `registration_no: "A1" already exists`},
	})
	want := []string{"registration_no: est obligatoire; first_name: doit comporter au plus 255 caractères",
		"3 champs attendus (comme l’en-tête), 5 trouvés", `registration_no: "A1" existe déjà`}
	for i, w := range want {
		if got[i].Msg != w {
			t.Errorf("row %d: %q, want %q", i, got[i].Msg, w)
		}
	}
	en := rowErrorsIn(defaultLocale(), []store.RowError{{Line: 3, Msg: "registration_no: is required"}})
	if en[0].Msg != "registration_no: is required" {
		t.Errorf("English changed: %q", en[0].Msg)
	}
}

// TestRowsInFrench: the rows written in Go (list_rows.go) speak the
// page's language where they have words: the public page's status values
// and the admin list's select-box labels.
func TestRowsInFrench(t *testing.T) {
	e := newEnv(t, "rennes", envOptions{})
	e.addStudent("R1", "Amina", "Njeri")
	ctx := context.Background()
	if err := e.store.SetPublicFields(ctx, []string{"status"}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, e.browser().get("/"), "<td>enrolled</td>")
	if err := e.store.SetLocale(ctx, "fr", false, "UTC"); err != nil {
		t.Fatal(err)
	}
	e.app.forgetSettings()
	wantBody(t, e.browser().get("/"), "<td>inscrit</td>", "<th scope=\"col\">Statut</th>")
	b := e.browser()
	b.login()
	wantBody(t, b.get("/admin/students/"), `aria-label="Sélectionner Amina Njeri (R1)"`)
}

// TestSwahiliPublicPage: a school in Swahili shows its public page, its
// list's 400 and its 404 in Swahili; another school stays English.
func TestSwahiliPublicPage(t *testing.T) {
	e := newEnv(t, "mombasa", envOptions{})
	e.addStudent("M1", "Amina", "Njeri")
	other := newEnv(t, "kigali", envOptions{})
	other.addStudent("K1", "Jean", "Mugisha")
	if err := e.store.SetLocale(context.Background(), "sw", false, "Africa/Nairobi"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	r := b.get("/")
	wantCode(t, r, http.StatusOK)
	wantBody(t, r, `<html lang="sw">`, "Wanafunzi", "Namba ya usajili", "Amina")
	r = b.get("/?page=x")
	wantCode(t, r, http.StatusBadRequest)
	wantBody(t, r, "“x” si namba ya ukurasa")
	wantBody(t, b.get("/nothing-here"), "Ukurasa haukupatikana")
	r = other.browser().get("/")
	wantBody(t, r, `<html lang="en">`, "Registration number")
	if strings.Contains(r.body, "Wanafunzi") {
		t.Errorf("the other school's public page in Swahili:\n%s", r.body)
	}
}
