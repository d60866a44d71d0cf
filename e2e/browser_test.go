package e2e

// Headless Chromium, driven with chromedp, and the small vocabulary the
// tests speak: open a page, fill a field, press a button, see text.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// defaultChromium is where Debian's chromium package puts the browser.
const defaultChromium = "/usr/bin/chromium"

// stepTimeout bounds one browser step (a navigation, a click, a query).
const stepTimeout = 45 * time.Second

// chromiumPath returns the browser to drive. A missing browser fails the
// test, loudly: a browser test that skips by itself proves nothing. Only
// CAMPUS_SKIP_BROWSER=1 skips, on purpose.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("CAMPUS_SKIP_BROWSER") == "1" {
		t.Skip("!!! BROWSER TEST SKIPPED because CAMPUS_SKIP_BROWSER=1: the web interface was NOT tested in a browser")
	}
	path := os.Getenv("CAMPUS_CHROMIUM")
	if path == "" {
		path = defaultChromium
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("\n!!! CHROMIUM NOT FOUND at %s (%v).\n"+
			"!!! The browser tests need it: run ./test.sh (it installs Chromium), or `apt-get install -y chromium`,\n"+
			"!!! or point CAMPUS_CHROMIUM at a Chromium binary. To skip them on purpose, set CAMPUS_SKIP_BROWSER=1.", path, err)
	}
	return path
}

// outputDir is where screenshots and logs go.
func outputDir() string {
	if d := os.Getenv("CAMPUS_TEST_OUTPUT"); d != "" {
		return d
	}
	return filepath.Join("testdata", "out")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// tab is one browser (its own profile, so its own cookies) with one tab.
type tab struct {
	t     *testing.T
	ctx   context.Context
	sys   *devSystem
	shots string // folder for this tab's screenshots
	n     int    // screenshots taken

	// forbidden are texts no page may show (another school's data); every
	// page opened is checked.
	forbidden []string

	mu      sync.Mutex
	console []string // errors the page reported: exceptions, CSP violations
}

// viewport is the size of the browser window's content, in CSS pixels.
type viewport struct{ width, height int }

var desktop = viewport{1280, 900}

// newTab starts a fresh Chromium for the test, with the flags the project
// runs it with, and stops it when the test ends.
func newTab(t *testing.T, sys *devSystem, vp viewport) *tab {
	t.Helper()
	return newTabWith(t, sys, vp)
}

// newTabWith is newTab with extra Chromium options.
func newTabWith(t *testing.T, sys *devSystem, vp viewport, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	path := chromiumPath(t)
	profile, err := os.MkdirTemp("", "campus-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's helpers may still write for a moment after it stops.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(vp.width, vp.height),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})

	// The first Run starts the browser; it must not carry a timeout (that
	// would end the browser), so wait for it here instead.
	started := make(chan error, 1)
	go func() {
		started <- chromedp.Do(ctx, chromedp.EmulateViewport(int64(vp.width), int64(vp.height)))
	}()
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("no answer within 60s")
	}
	if err != nil {
		t.Fatalf("\n!!! CHROMIUM (%s) COULD NOT START: %v\n"+
			"!!! The browser tests need a working Chromium. To skip them on purpose, set CAMPUS_SKIP_BROWSER=1.", path, err)
	}

	b := &tab{t: t, ctx: ctx, sys: sys, shots: filepath.Join(outputDir(), unsafeName.ReplaceAllString(t.Name(), "_"))}
	if err := os.RemoveAll(b.shots); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	go b.watchConsole(chromedp.Console(ctx))
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.console {
			t.Errorf("the page reported an error: %s", m)
		}
	})
	return b
}

// watchConsole records what would show as an error in the browser's
// console: uncaught exceptions, CSP violations, failed scripts. Failed
// loads of documents (the error pages the tests ask for) are "network"
// entries, expected, and not recorded.
func (b *tab) watchConsole(messages func(func(chromedp.ConsoleMessage, error) bool)) {
	for m, err := range messages {
		if err != nil {
			return
		}
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		if m.Source == "network" {
			continue
		}
		b.mu.Lock()
		b.console = append(b.console, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
		b.mu.Unlock()
	}
}

// as makes the tab report to a subtest until the returned func is called:
//
//	t.Run(name, func(t *testing.T) { defer b.as(t)(); … })
func (b *tab) as(t *testing.T) (restore func()) {
	parent := b.t
	b.t = t
	return func() { b.t = parent }
}

// step runs browser actions with a timeout.
func (b *tab) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to a URL (or a path on the current school, see at),
// checks the HTTP status and takes a screenshot.
func (b *tab) open(url string, wantStatus int, shot string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.shot("failed-" + shot)
		b.t.Fatalf("open %s: %v", url, err)
	}
	b.shot(shot)
	b.checkForbidden()
	if int(resp.Status) != wantStatus {
		b.t.Fatalf("open %s: status %d, want %d; the page says:\n%s", url, resp.Status, wantStatus, b.text())
	}
}

// press clicks a button or link that loads a new page, waits for it, checks
// its status and takes a screenshot.
func (b *tab) press(sel string, wantStatus int, shot string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.shot("failed-" + shot)
		b.t.Fatalf("press %s: %v", sel, err)
	}
	b.shot(shot)
	if resp == nil {
		b.t.Fatalf("press %s: no page was loaded", sel)
	}
	b.checkForbidden()
	if int(resp.Status) != wantStatus {
		b.t.Fatalf("press %s: status %d, want %d; the page says:\n%s", sel, resp.Status, wantStatus, b.text())
	}
}

// fill replaces the text of an input, typing it as a person would.
func (b *tab) fill(sel, text string) {
	b.t.Helper()
	b.step("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// text is what the page shows: the rendered text of the body.
func (b *tab) text() string {
	b.t.Helper()
	return value(b, "read the page", chromedp.Evaluate[string](`document.body.innerText`))
}

// textOf is the rendered text of the first element matching sel; the
// element must be there.
func (b *tab) textOf(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(value(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// count is the number of elements matching sel, without waiting.
func (b *tab) count(sel string) int {
	b.t.Helper()
	return value(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
}

// attr is an attribute of the first element matching sel ("" if absent).
func (b *tab) attr(sel, name string) string {
	b.t.Helper()
	return value(b, "read "+sel+"@"+name, chromedp.Evaluate[string](
		fmt.Sprintf(`(document.querySelector(%q) || {getAttribute: () => ""}).getAttribute(%q) || ""`, sel, name)))
}

// see fails the test unless the page shows every text.
func (b *tab) see(texts ...string) {
	b.t.Helper()
	page := b.text()
	for _, s := range texts {
		if !strings.Contains(page, s) {
			b.t.Errorf("the page does not show %q; it shows:\n%s", s, page)
		}
	}
}

// dontSee fails the test if the page shows any of the texts.
func (b *tab) dontSee(texts ...string) {
	b.t.Helper()
	page := b.text()
	for _, s := range texts {
		if strings.Contains(page, s) {
			b.t.Errorf("the page shows %q, and must not; it shows:\n%s", s, page)
		}
	}
}

// checkForbidden fails the test if the page shows a forbidden text.
func (b *tab) checkForbidden() {
	b.t.Helper()
	if len(b.forbidden) > 0 {
		b.dontSee(b.forbidden...)
	}
}

// activeID is the id of the element that has the keyboard focus.
func (b *tab) activeID() string {
	b.t.Helper()
	return value(b, "read the focus", chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
}

// shot saves a screenshot of the whole page under the test's folder.
func (b *tab) shot(name string) {
	b.t.Helper()
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, unsafeName.ReplaceAllString(name, "-")))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
	}
}
