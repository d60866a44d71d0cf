package main

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// multipart posts fields (and a CSV file when csv != "") to path.
func (b *browser) multipart(path string, fields map[string]string, csv string) (int, string, *http.Response) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if csv != "" {
		fw, err := mw.CreateFormFile("file", "students.csv")
		if err != nil {
			b.t.Fatal(err)
		}
		io.WriteString(fw, csv)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, b.d.url(b.host, path), &buf)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s%s: %v", b.host, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp
}

func inputValue(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no input %q in page: %.500s", name, page)
	}
	return html.UnescapeString(m[1])
}

// TestDevImportKeepsSchoolAwake: a browser import runs in the background
// of nairobi's app (50,000 rows), with an idle timeout (1s) much shorter than the
// import and nobody watching its progress page. The supervisor keeps
// nairobi running until the import has ended (the app says it is busy),
// while accra, idle meanwhile, is stopped as usual (cross-tenant); the
// import commits, and nairobi idles once it is over.
func TestDevImportKeepsSchoolAwake(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test starts the whole system; skipped with -short")
	}
	// Checks every 200ms: the import (≥ 1 s on any machine) is seen busy
	// long before it ends.
	d := startDev(t, "--idle-timeout", "1s", "--health-interval", "200ms")
	const password = "correct-horse-battery"
	if out, err := d.campus([]string{"CAMPUS_SUPERUSER_PASSWORD=" + password}, "",
		"manage", "nairobi", "createsuperuser", "--username", "head", "--email", "head@nairobi.example", "--noinput"); err != nil {
		t.Fatalf("createsuperuser: %v\n%s", err, out)
	}
	const rows = 50_000
	var csv strings.Builder
	csv.WriteString("registration_no,first_name,second_name\n")
	for i := range rows {
		fmt.Fprintf(&csv, "NBI-%06d,Amina,Kamau\n", i)
	}
	b := d.browser("nairobi.school.localhost")
	b.login("head", password)
	_, form, _ := b.do(http.MethodGet, "/admin/students/import/", nil)
	code, preview, _ := b.multipart("/admin/students/import/", map[string]string{"csrf_token": csrfToken(t, form), "mode": "add"}, csv.String())
	if code != http.StatusOK {
		t.Fatalf("preview: %d %.500s", code, preview)
	}
	code, page, resp := b.multipart("/admin/students/import/", map[string]string{
		"csrf_token": csrfToken(t, preview), "confirm": "yes", "mode": inputValue(t, preview, "mode"),
		"plan": inputValue(t, preview, "plan"), "payload": inputValue(t, preview, "payload")}, "")
	progress := resp.Header.Get("Location")
	if code != http.StatusSeeOther || !strings.Contains(progress, "/progress/") {
		t.Fatalf("confirmation: %d to %q %.300s", code, progress, page)
	}
	confirmed := len(d.logs.String())

	// Nobody looks at nairobi now. accra idles away meanwhile.
	if err := systemtest.Eventually(60*time.Second, func() error {
		if d.tenantRun("accra") != "idle" {
			return errors.New("accra not idle")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// nairobi is stopped only after its import has ended.
	if err := systemtest.Eventually(5*time.Minute, func() error {
		if d.tenantRun("nairobi") != "idle" {
			return errors.New("nairobi not idle")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	logs := d.logs.String()[confirmed:]
	busy := strings.Index(logs, `"msg":"tenant busy`)
	over := strings.Index(logs, `"msg":"tenant no longer busy`)
	stop := strings.Index(logs, `"msg":"tenant idle; stopping child","component":"supervisor","tenant":"nairobi"`)
	if busy < 0 || over < 0 || stop < 0 || !(busy < over && over < stop) {
		t.Fatalf("want nairobi busy, no longer busy, then stopped idle (at %d, %d, %d) in:\n%s", busy, over, stop, logs)
	}
	// Not stopped before its import committed (without the busy check it
	// was, a second after the confirmation: Close then gives the import
	// store.ImportDrain and rolls back a longer one).
	if committed := strings.Index(logs, `"msg":"import committed","tenant":"nairobi"`); committed < 0 || stop < committed {
		t.Errorf("nairobi stopped (at %d) before its import committed (at %d)", stop, committed)
	}
	if !strings.Contains(logs[busy:over], `"tenant":"nairobi"`) {
		t.Errorf("the busy line is not nairobi's:\n%s", logs[busy:over])
	}
	// The progress page (it wakes nairobi) says the import committed.
	code, done, _ := b.do(http.MethodGet, progress, nil)
	if code != http.StatusOK || !strings.Contains(done, `id="import-done"`) || !strings.Contains(done, "Successfully imported 50,000 students.") {
		t.Fatalf("progress page after the idle stop: %d %.800s", code, done)
	}
}
