package e2e

import (
	"net/http"
	"testing"
)

// TestProxyErrorPages opens the pages the proxy answers by itself: an
// unknown school (404) and a school under maintenance (503). They are
// readable, styled like the app, and say nothing about other schools.
func TestProxyErrorPages(t *testing.T) {
	sys := system(t)
	b := newTab(t, sys, desktop)
	b.forbidden = []string{"Nairobi", "Accra", "Campus School", "Kisumu", "NRB/", "ACC/"}

	b.open(sys.url("no-such-school.school.localhost", "/"), http.StatusNotFound, "unknown-school")
	b.see("404", "School not found", "There is no school at this address.")
	b.audit("unknown school page")
	if got := value(b, "read the title", chromeTitle()); got != "School not found" {
		t.Errorf("title %q", got)
	}
	b.open(sys.url("no-such-school.school.localhost", "/admin/students/"), http.StatusNotFound, "unknown-school-admin")
	b.see("School not found")

	// A suspended school shows the maintenance page, with its own name.
	lagos := sys.createTenant(t, "lagos", "Lagos Grammar School")
	if _, err := sys.campus(nil, "tenant", "suspend", "lagos"); err != nil {
		t.Fatal(err)
	}
	if err := sys.waitFor(lagos, http.StatusServiceUnavailable, 30e9); err != nil {
		t.Fatal(err)
	}
	b.open(sys.url(lagos, "/"), http.StatusServiceUnavailable, "maintenance")
	b.see("503", "Down for maintenance", "Lagos Grammar School is down for maintenance.")
	b.audit("maintenance page")
	b.step("phone size", emulatePhone())
	b.open(sys.url(lagos, "/"), http.StatusServiceUnavailable, "maintenance-phone")
	b.noSideways("maintenance page on a phone")
}
