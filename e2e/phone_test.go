package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// phone is a small phone's screen in CSS pixels.
var phone = viewport{375, 720}

func chromeTitle() chromedp.Action[string] { return chromedp.Title() }

// emulatePhone makes the tab a phone: 375 CSS pixels wide, touch, mobile
// layout.
func emulatePhone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(int64(phone.width), int64(phone.height), chromedp.EmulateMobile, chromedp.EmulateTouch)
}

// noSideways fails the test if the page is wider than the screen: on a
// phone, only a table's own box may scroll sideways, never the page.
func (b *tab) noSideways(page string) {
	b.t.Helper()
	widths := value(b, "measure the page", chromedp.Evaluate[[]int](
		`[document.documentElement.scrollWidth, window.innerWidth]`))
	if widths[0] > widths[1] {
		b.t.Errorf("%s: the page is %dpx wide on a %dpx screen", page, widths[0], widths[1])
	}
}

// inView fails the test unless the element is entirely on the screen.
func (b *tab) inView(sel string) {
	b.t.Helper()
	ok := value(b, "measure "+sel, chromedp.Evaluate[bool](`(() => {
		const e = document.querySelector(`+"`"+sel+"`"+`);
		if (!e) return false;
		const r = e.getBoundingClientRect();
		return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;
	})()`))
	if !ok {
		b.t.Errorf("%s is not on the screen", sel)
	}
}

// TestPhone uses the public page and the admin site on a 375px-wide
// phone screen: nothing is cut off or makes the page scroll sideways.
func TestPhone(t *testing.T) {
	sys := system(t)
	seedCampusSchool(t, sys)
	b := newTab(t, sys, phone)
	b.step("phone", emulatePhone())
	at := func(path string) string { return campusSchool.url(sys, path) }

	b.open(at("/"), http.StatusOK, "public")
	b.noSideways("public page")
	b.inView(`form[role=search] button`)
	b.see("Campus School", "CS/24/00001")

	b.login(sys, campusSchool)
	for _, p := range []struct{ path, name string }{
		{"/admin/students/", "admin list"},
		{"/admin/students/add/", "add form"},
		{"/admin/students/import/", "import page"},
		{"/?q=nobody-at-all", "empty search"},
	} {
		b.open(at(p.path), http.StatusOK, p.name)
		b.noSideways(p.name)
	}
	b.open(at("/admin/students/"), http.StatusOK, "admin list again")
	b.inView(`a[href="/admin/students/add/"]`)
	b.inView(`form[action="/admin/logout/"] button`)
}

// TestREADMEScreenshots takes the README's pictures of the public page,
// the admin list, the list filtered by class and a phone. With CAMPUS_UPDATE_SCREENSHOTS=1 it writes
// them to docs/screenshots/ (commit them); otherwise only to the test
// output folder.
func TestREADMEScreenshots(t *testing.T) {
	sys := system(t)
	seedCampusSchool(t, sys)
	b := newTab(t, sys, desktop)
	at := func(path string) string { return campusSchool.url(sys, path) }
	dest := b.shots
	if os.Getenv("CAMPUS_UPDATE_SCREENSHOTS") == "1" {
		dest = filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Small files: the viewport only (not the whole page); desktop pages
	// drawn at 0.8 device pixels per CSS pixel.
	save := func(name string, vp viewport, scale float64, opts ...chromedp.EmulateViewportOption) {
		t.Helper()
		opts = append(opts, chromedp.EmulateScale(scale))
		b.step("size for "+name, chromedp.EmulateViewport(int64(vp.width), int64(vp.height), opts...))
		png := value(b, "screenshot "+name, chromedp.CaptureScreenshot())
		const maxSize = 150 << 10
		if len(png) > maxSize {
			t.Errorf("%s: %d KB, want at most %d KB", name, len(png)>>10, maxSize>>10)
		}
		if err := os.WriteFile(filepath.Join(dest, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d KB", filepath.Join(dest, name), len(png)>>10)
	}
	shotSize := viewport{1100, 640}

	b.open(at("/"), http.StatusOK, "public")
	b.see("Campus School", "CS/24/00001")
	save("public.png", shotSize, 0.8)

	b.login(sys, campusSchool)
	b.open(at("/admin/students/"), http.StatusOK, "admin")
	b.see("Students", "CS/24/00001")
	save("admin.png", shotSize, 0.8)

	b.open(at("/admin/students/?class=Form+2&sort=second_name"), http.StatusOK, "filters")
	b.see("By class", "Form 2")
	save("filters.png", shotSize, 0.8)

	b.step("phone", emulatePhone())
	b.open(at("/"), http.StatusOK, "phone")
	save("phone.png", viewport{phone.width, 667}, 1, chromedp.EmulateMobile, chromedp.EmulateTouch)
}
