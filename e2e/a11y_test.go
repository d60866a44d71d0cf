package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// auditJS checks the page as a keyboard or screen-reader user, or a person
// with low vision, meets it, and returns the problems found:
//   - the document has a language and a title, and exactly one h1;
//   - every form control has a label, and aria-describedby names elements
//     that exist;
//   - every link and button has a name;
//   - no positive tabindex (it breaks the focus order);
//   - visible text contrasts with its background at least 4.5:1 (3:1 for
//     large text), per WCAG 2 AA, background colours blended through
//     transparent layers.
const auditJS = `(() => {
  const problems = [];
  const short = el => el.outerHTML.slice(0, 120);
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (!document.title.trim()) problems.push("the page has no title");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(h1 + " h1 elements, want 1");

  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!((el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby"))) {
      problems.push("no label: " + short(el));
    }
  }
  for (const el of document.querySelectorAll("[aria-describedby]")) {
    for (const id of el.getAttribute("aria-describedby").split(/\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) problems.push("aria-describedby names a missing #" + id + ": " + short(el));
    }
  }
  for (const el of document.querySelectorAll("a[href], button")) {
    if (!(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push("no name: " + short(el));
  }
  for (const el of document.querySelectorAll("[tabindex]")) {
    if (el.tabIndex > 0) problems.push("positive tabindex: " + short(el));
  }

  const parse = s => {
    const m = s.match(/rgba?\(([^)]*)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (fg, bg) => ({r: fg.r*fg.a + bg.r*(1-fg.a), g: fg.g*fg.a + bg.g*(1-fg.a), b: fg.b*fg.a + bg.b*(1-fg.a), a: 1});
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v/12.92 : Math.pow((v+0.055)/1.055, 2.4); };
    return 0.2126*f(c.r) + 0.7152*f(c.g) + 0.0722*f(c.b);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || seen.has(el)) continue;
    seen.add(el);
    if (el.closest("[hidden], [disabled], [aria-hidden=true]")) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) continue; // visually hidden
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || st.display === "none") continue;
    const fg = parse(st.color);
    if (!fg) continue;
    const bg = background(el);
    const c = over(fg, bg);
    const l1 = lum(c), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) {
      problems.push("contrast " + ratio.toFixed(2) + " < " + need + " for " + JSON.stringify(n.textContent.trim().slice(0, 40)) +
        " (" + st.color + " on rgb(" + [bg.r, bg.g, bg.b].map(Math.round) + "))");
    }
  }
  return problems;
})()`

// audit fails the test for each accessibility problem on the page.
func (b *tab) audit(page string) {
	b.t.Helper()
	for _, p := range value(b, "audit "+page, chromedp.Evaluate[[]string](auditJS)) {
		b.t.Errorf("%s: %s", page, p)
	}
}

// focused describes the element with the keyboard focus.
func (b *tab) focused() string {
	b.t.Helper()
	return value(b, "read the focus", chromedp.Evaluate[string](`(() => {
		const e = document.activeElement;
		if (!e || e === document.body) return "body";
		return e.id ? "#" + e.id : e.tagName.toLowerCase() + ":" + e.textContent.trim().slice(0, 40);
	})()`))
}

// tab presses the Tab key.
func (b *tab) tabKey() {
	b.t.Helper()
	b.step("press Tab", chromedp.KeyEvent(kb.Tab))
}

// TestAccessibility audits the pages people use (see auditJS), and walks
// them with the keyboard: the skip link comes first and is visible when
// focused, fields are reached in reading order.
func TestAccessibility(t *testing.T) {
	sys := system(t)
	seedCampusSchool(t, sys)
	b := newTab(t, sys, desktop)
	at := func(path string) string { return campusSchool.url(sys, path) }

	b.open(at("/"), http.StatusOK, "public")
	b.audit("public page")

	// Keyboard: the first Tab reaches the skip link, which shows itself;
	// Enter moves the focus to the main content.
	b.tabKey()
	if got := b.focused(); got != "a:Skip to main content" {
		t.Errorf("first Tab focuses %q, want the skip link", got)
	}
	visible := value(b, "measure the skip link", chromedp.Evaluate[bool](`(() => {
		const r = document.activeElement.getBoundingClientRect();
		return r.width > 40 && r.height > 16 && r.top >= 0 && r.left >= 0;
	})()`))
	if !visible {
		t.Error("the focused skip link is not visible")
	}
	b.shot("skip-link-focused")
	b.step("follow the skip link", chromedp.KeyEvent(kb.Enter))
	if got := b.focused(); got != "#main" {
		t.Errorf("after the skip link, focus is on %q, want #main", got)
	}
	b.tabKey()
	if got := b.focused(); got != "#q" {
		t.Errorf("the first control after the skip is %q, want the search box", got)
	}

	b.open(at("/?q=no-such-student"), http.StatusOK, "public-empty")
	b.audit("public page, no match")
	b.see("No students match “no-such-student”.")

	b.open(at("/admin/login/"), http.StatusOK, "login")
	b.audit("login page")
	b.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "login-empty")
	b.see("This field is required.")
	b.audit("login page with errors")
	b.fill("#id_username", adminUser(campusSchool.tenant))
	b.fill("#id_password", "wrong password")
	b.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "login-wrong")
	b.audit("login page, wrong password")
	b.see("Please enter a correct username and password.")
	if got := b.focused(); got != "#id_password" {
		t.Errorf("after a wrong password, focus is on %q, want the password field", got)
	}
	b.login(sys, campusSchool)

	b.open(at("/admin/students/"), http.StatusOK, "list")
	b.audit("admin list")

	// The add form in reading order: skip link, the header's links, the
	// breadcrumb, then the fields top to bottom and the Save button.
	b.open(at("/admin/students/add/"), http.StatusOK, "add")
	var order []string
	for range 40 { // the record's fields: a date input takes a stop per part
		b.tabKey()
		order = append(order, b.focused())
	}
	want := []string{"a:Skip to main content", "#id_registration_no", "#id_first_name", "#id_second_name", "#id_class",
		"#id_status", "#id_gender", "#id_guardian_name", "#id_guardian_phone", "#id_guardian_email", "#id_notes", "button:Save"}
	pos := 0
	for _, f := range order {
		if pos < len(want) && f == want[pos] {
			pos++
		}
	}
	if pos < len(want) || order[0] != want[0] {
		t.Errorf("Tab order %v; want %v in that order", order, want)
	}
	b.press(`button[name=_save]`, http.StatusUnprocessableEntity, "add-errors")
	b.audit("add form with errors")

	b.open(at("/admin/students/import/"), http.StatusOK, "import")
	b.audit("import page")
	b.open(at("/admin/students/?q=CS/24/00001"), http.StatusOK, "one-student")
	b.press(`#changelist tbody a`, http.StatusOK, "change")
	b.audit("change form")
	b.press(`a.btn-outline-danger`, http.StatusOK, "delete-confirm")
	b.audit("delete confirmation")
	b.open(at("/admin/students/?q=nothing-like-it"), http.StatusOK, "admin-empty")
	b.audit("admin list, no match")
	b.open(at("/no/such/page"), http.StatusNotFound, "app-404")
	b.audit("app 404 page")
	b.see("Page not found")
	if strings.Contains(b.text(), "panic") {
		t.Error("the 404 page shows a panic")
	}
}
