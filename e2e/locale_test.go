package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Issue 27 item 7: a French admin session, with times in Africa/Nairobi.
// The superuser sets the school's language to French and its zone to
// Africa/Nairobi on the settings page; from then on every page is in
// French although the browser asks for English (the school does not let
// browsers choose): log out, the log-in page, the list, a student, the
// student's history with the time of the change in Nairobi's zone. Another
// school in the same system stays in English and UTC.
func TestFrenchAdminSessionInNairobiTime(t *testing.T) {
	sys := system(t)
	sch := school{"ecole", sys.createTenant(t, "ecole", "École Mwangaza")}
	other := school{"plain", sys.createTenant(t, "plain", "Plain School")}
	nairobiZone, err := time.LoadLocation("Africa/Nairobi")
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, sys, desktop)
	b.login(sys, sch)

	b.open(sch.url(sys, "/admin/settings/"), http.StatusOK, "settings-en")
	b.step("choose French", chromedp.SetValue(chromedp.CSS("#id_language"), "fr"))
	b.fill("#id_time_zone", "Africa/Nairobi")
	b.press("#save-locale", http.StatusOK, "settings-fr")
	b.see("Réglages du site", "Les réglages ont été enregistrés.", "Langue et heure", "Fuseau horaire")
	if lang := b.attr("html", "lang"); lang != "fr" {
		t.Errorf(`<html lang=%q>, want "fr"`, lang)
	}

	before := time.Now()
	b.open(sch.url(sys, "/admin/students/add/"), http.StatusOK, "add-form-fr")
	b.see("Ajouter un élève", "Numéro d’inscription", "Prénom")
	b.fill("#id_registration_no", "EM/1")
	b.fill("#id_first_name", "Akinyi")
	b.fill("#id_second_name", "Otieno")
	b.press(`button[name=_continue]`, http.StatusOK, "added-fr")
	after := time.Now()
	if got, want := b.textOf("#flash"), "L’élève « Akinyi Otieno (EM/1) » a été ajouté."; got != want {
		t.Errorf("flash %q, want %q", got, want)
	}

	// Log out, and the whole way back in French: log-in page, list,
	// student, history.
	b.press(`form[action="/admin/logout/"] button[type=submit]`, http.StatusOK, "logged-out-fr")
	b.open(sch.url(sys, "/admin/login/"), http.StatusOK, "login-fr")
	b.see("Connexion", "Identifiant", "Mot de passe")
	b.fill("#id_username", adminUser(sch.tenant))
	b.fill("#id_password", adminPassword)
	b.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "list-fr")
	b.see("Connecté en tant que "+adminUser(sch.tenant), "Élèves", "1 élève", "Akinyi", "Exporter en CSV")
	b.dontSee("Log out", "Students", "Add student")
	if os.Getenv("CAMPUS_UPDATE_SCREENSHOTS") == "1" { // the README's French page (phone_test.go)
		b.step("size for admin-fr.png", chromedp.EmulateViewport(1100, 640, chromedp.EmulateScale(0.8)))
		png := value(b, "screenshot admin-fr.png", chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", "admin-fr.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		b.step("size back", chromedp.EmulateViewport(int64(desktop.width), int64(desktop.height)))
	}
	b.press(`a[href$="/change/"]`, http.StatusOK, "student-fr")
	b.see("Modifier l’élève", "Enregistrer", "Historique")
	b.press("#history-link", http.StatusOK, "history-fr")
	b.see("Historique des modifications", "Date et heure", "Ajout")
	when := b.textOf("#history tbody td")
	m := regexp.MustCompile(`^(\d{1,2}) (\S+) (\d{4}) à (\d{2}:\d{2}) EAT$`).FindStringSubmatch(when)
	if m == nil {
		t.Fatalf("history time %q is not a French date in Nairobi's zone", when)
	}
	ok := false
	for at := before.In(nairobiZone).Truncate(time.Minute); !at.After(after.In(nairobiZone)); at = at.Add(time.Minute) {
		ok = ok || at.Format("15:04") == m[4]
	}
	if !ok {
		t.Errorf("history time %q: not the Nairobi time of the change (%s–%s)", when,
			before.In(nairobiZone).Format("15:04"), after.In(nairobiZone).Format("15:04"))
	}

	// The other school, same browser kind: English and UTC.
	o := newTab(t, sys, desktop)
	o.login(sys, other)
	o.open(other.url(sys, "/admin/"), http.StatusOK, "other-home")
	o.see("Site administration", "Recent actions")
	o.dontSee("Élèves", "Réglages", "EAT")
	if lang := o.attr("html", "lang"); lang != "en" {
		t.Errorf(`other school: <html lang=%q>`, lang)
	}
	if strings.Contains(o.text(), "Déconnexion") {
		t.Error("the other school's page is in French")
	}
}
