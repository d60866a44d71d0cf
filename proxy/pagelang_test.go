package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/campus-saas/campus/registry"
)

func TestPageLang(t *testing.T) {
	tests := []struct {
		accept, want string
	}{
		{"", "en"},
		{"fr", "fr"},
		{"fr-CA,fr;q=0.9,en;q=0.5", "fr"},
		{"fr-BE", "fr"},
		{"en-GB,en;q=0.9,fr;q=0.8", "en"},
		{"en;q=0.1, fr", "fr"},
		{"de", "en"},
		{"sw,fr;q=0.5", "fr"},
		{"*", "en"},
		{";;;q=garbage", "en"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept-Language", tt.accept)
		}
		if got := pageLang(r); got != tt.want {
			t.Errorf("pageLang(%q) = %q, want %q", tt.accept, got, tt.want)
		}
	}
}

// TestEveryPageInFrench: every word of every proxy page has a French
// entry, and the French keeps the {school} placeholder where the English
// has it.
func TestEveryPageInFrench(t *testing.T) {
	pages := []*page{pageBadHost, pageUnknownSchool, pageNotFound, pageMaintenance, pageUnavailable, pageStarting,
		pageTooLarge, pageBadBody, pageTooManyResets, pageBadGateway, pageTimeout}
	words := []string{"this school", "Try again", "Reference:"}
	for _, pg := range pages {
		words = append(words, pg.title, pg.message)
	}
	for _, w := range words {
		fr, ok := pageFrench[w]
		if !ok {
			t.Errorf("no French for %q", w)
			continue
		}
		if strings.Contains(w, "{school}") != strings.Contains(fr, "{school}") {
			t.Errorf("French of %q is %q: the {school} placeholder differs", w, fr)
		}
	}
}

// TestPagesInVisitorsLanguageCrossTenant: the proxy's pages follow each
// request's Accept-Language only: French asked at one school's host does
// not carry to another school's host (or an unknown one), and a page
// never names another school.
func TestPagesInVisitorsLanguageCrossTenant(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: -1})
	tp.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{
		tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost"),
		suspended(tenant(t, "accra", "Accra Academy", "accra.school.localhost")),
	}})
	french := http.Header{"Accept-Language": {"fr-FR,fr;q=0.9"}}
	for round := 0; round < 3; round++ {
		for _, tt := range []struct {
			rq     request
			status int
			want   []string
			never  []string
		}{
			{request{host: "accra.school.localhost", header: french}, 503,
				[]string{`<html lang="fr">`, "Accra Academy est en maintenance", "En maintenance", "Référence :"},
				[]string{"Nairobi High", "maintenance. Your records"}},
			{request{host: "nairobi.school.localhost"}, 503,
				[]string{`<html lang="en">`, "Nairobi High is starting up", "Try again", "Reference:"},
				[]string{"Accra Academy", "Un instant", "Réessayer", "Référence"}},
			{request{host: "nairobi.school.localhost", header: french}, 503,
				[]string{`<html lang="fr">`, "Nairobi High démarre", "Réessayer"},
				[]string{"Accra Academy", "Just a moment"}},
			{request{host: "accra.school.localhost"}, 503,
				[]string{`<html lang="en">`, "Accra Academy is down for maintenance"},
				[]string{"Nairobi High", "En maintenance"}},
			{request{host: "nope.school.localhost", header: french}, 404,
				[]string{`<html lang="fr">`, "École introuvable"},
				[]string{"Nairobi High", "Accra Academy", "nope"}},
			{request{host: "nope.school.localhost"}, 404,
				[]string{`<html lang="en">`, "School not found"},
				[]string{"Nairobi High", "Accra Academy", "École"}},
		} {
			resp := tp.do(t, tt.rq)
			if resp.status != tt.status {
				t.Fatalf("%s %v: status %d, want %d", tt.rq.host, tt.rq.header, resp.status, tt.status)
			}
			lang := "en"
			if tt.rq.header != nil {
				lang = "fr"
			}
			if resp.header.Get("Content-Language") != lang || !strings.Contains(resp.header.Get("Vary"), "Accept-Language") {
				t.Errorf("%s: Content-Language %q, Vary %q", tt.rq.host, resp.header.Get("Content-Language"), resp.header.Get("Vary"))
			}
			for _, w := range tt.want {
				if !strings.Contains(resp.body, w) {
					t.Errorf("%s (%s): no %q in\n%s", tt.rq.host, lang, w, resp.body)
				}
			}
			for _, w := range tt.never {
				if strings.Contains(resp.body, w) {
					t.Errorf("%s (%s): %q in\n%s", tt.rq.host, lang, w, resp.body)
				}
			}
		}
	}
}
