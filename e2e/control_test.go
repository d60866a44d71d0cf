package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// startControl runs `campus control` beside the system, on the proxy's
// counters, and returns its base URL.
func startControl(t *testing.T, sys *devSystem) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(outputDir(), "campus-control.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := sys.Command(context.Background(), "control", "--listen", "127.0.0.1:"+port, "--proxy-admin", "http://"+sys.AdminAddr, "--stats-interval", "1s")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("campus control did not stop within 30 s of SIGINT")
		}
		log.Close()
	})
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("campus control is not healthy after 30 s: %v (log: %s)", err, log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControlConsole: an operator logs in to the console with a token,
// creates a school, its first superuser sets a password through the
// invite link and logs in; the operator suspends the school (its site
// shows the maintenance page), resumes it and downloads a backup.
func TestControlConsole(t *testing.T) {
	sys := system(t)
	out, err := sys.campus(nil, "operator", "token", "create", "e2e-ops")
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "campus-op-") {
			token = strings.TrimSpace(l)
		}
	}
	if token == "" {
		t.Fatalf("no token in:\n%s", out)
	}
	console := startControl(t, sys)
	b := newTab(t, sys, desktop)

	b.open(console+"/console/login", http.StatusOK, "console-login")
	b.fill("#token", token)
	b.press(`form[action="/console/login"] button[type=submit]`, http.StatusOK, "console-schools")
	b.see("Schools", "Operator e2e-ops", "Nairobi")

	name := "kisii"
	host := name + ".school.localhost"
	b.open(console+"/console/new", http.StatusOK, "console-new")
	b.fill("#name", name)
	b.fill("#display_name", "Kisumu Academy")
	b.fill("#hosts", host)
	b.fill("#superuser", "head-kisumu")
	b.fill("#email", "head@kisumu.example")
	b.press(`form[action="/console/schools"] button[type=submit]`, http.StatusCreated, "console-created")
	b.see("Kisumu Academy is created", "shown only now")
	invite := value(b, "read the invite link", chromedp.Evaluate[string](`document.querySelector("#invite").value`))
	if !strings.HasPrefix(invite, sys.url(host, "/admin/password-reset/?token=")) {
		t.Fatalf("invite link %q", invite)
	}
	if err := sys.waitFor(host, http.StatusOK, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// The first superuser opens the invite in the school's admin.
	school := newTab(t, sys, desktop)
	school.open(invite, http.StatusOK, "invite")
	school.see("Set a new password", "head-kisumu")
	school.fill("#id_new_password1", adminPassword)
	school.fill("#id_new_password2", adminPassword)
	school.press(`form[action="/admin/password-reset/"] button[type=submit]`, http.StatusOK, "password-set")
	school.fill("#id_username", "head-kisumu")
	school.fill("#id_password", adminPassword)
	school.press(`form[action="/admin/login/"] button[type=submit]`, http.StatusOK, "first-login")
	school.see("Logged in as head-kisumu")

	// Suspend: the site shows the maintenance page.
	b.open(console+"/console/schools/"+name, http.StatusOK, "console-school")
	b.see("Kisumu Academy", "schools.create", "e2e-ops")
	b.press(`form[action="/console/schools/`+name+`/suspend"] button`, http.StatusOK, "console-suspended")
	if got := b.textOf("#state"); got != "suspended" {
		t.Errorf("state after suspend: %q", got)
	}
	if err := sys.waitFor(host, http.StatusServiceUnavailable, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	school.open(sys.url(host, "/"), http.StatusServiceUnavailable, "maintenance")
	school.see("Down for maintenance")

	b.press(`form[action="/console/schools/`+name+`/resume"] button`, http.StatusOK, "console-resumed")
	if got := b.textOf("#state"); got != "active" {
		t.Errorf("state after resume: %q", got)
	}
	if err := sys.waitFor(host, http.StatusOK, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// The backup download: a gzip archive of the school, fetched with the
	// console's session.
	href := b.attr(`a[href$="/backup"]`, "href")
	got := value(b, "download the backup", chromedp.Evaluate[string](fmt.Sprintf(
		`fetch(%q).then(r => r.arrayBuffer().then(b => r.status + " " + r.headers.get("Content-Disposition") + " " + b.byteLength + " " + new Uint8Array(b)[0] + "," + new Uint8Array(b)[1]))`, href),
		func(p *runtime.EvaluateParams) { p.AwaitPromise = &awaitPromise }))
	var status, size int
	var disposition, magic string
	if _, err := fmt.Sscanf(got, "%d %s %s %d %s", &status, &disposition, new(string), &size, &magic); err != nil || status != 200 || !strings.Contains(got, name+"-") || size < 200 || magic != "31,139" {
		t.Errorf("backup download: %q", got)
	}

	// The school's requests and its 503s while suspended reach the
	// console from the proxy's counters.
	b.open(console+"/console/schools/"+name, http.StatusOK, "console-school-after")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.attr("svg.sparkline", "aria-label"), "errors") || strings.Contains(b.attr("svg.sparkline", "aria-label"), " 0 errors") {
		if time.Now().After(deadline) {
			t.Fatalf("the console shows no requests or errors of %s: %q", name, b.attr("svg.sparkline", "aria-label"))
		}
		time.Sleep(time.Second)
		b.open(console+"/console/schools/"+name, http.StatusOK, "console-school-after")
	}

	// The README's picture of the console.
	if os.Getenv("CAMPUS_UPDATE_SCREENSHOTS") == "1" {
		b.open(console+"/console/", http.StatusOK, "console-readme")
		b.step("size", chromedp.EmulateViewport(1100, 640, chromedp.EmulateScale(0.8)))
		png := value(b, "screenshot", chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		b.open(console+"/console/schools/"+name, http.StatusOK, "console-school-readme")
		png = value(b, "screenshot", chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", "console-school.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var awaitPromise = true
