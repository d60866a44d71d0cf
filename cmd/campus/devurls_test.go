package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// `campus dev` prints links with the port its proxy serves, and the exact
// lines a second terminal needs; run as printed, from another folder, they
// reach the same system (data folder, embedded database and public URL
// from dev.json) and print the same links.
func TestDevSecondTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test starts the whole system; skipped with -short")
	}
	d := startDev(t)
	banner := d.waitForOutput("Press Ctrl-C to stop.", 30*time.Second)
	for _, want := range []string{
		"nairobi    http://nairobi.school.localhost:" + d.proxyPort + "/\n",
		"default    http://school.localhost:" + d.proxyPort + "/\n",
		"export CAMPUS_DATA=" + d.data + "\n",
		campusBin + " manage nairobi createsuperuser\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	_, rest, _ := strings.Cut(banner, "run in a second terminal:\n")
	var lines []string
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "export MONGODB_URI=") {
			continue // a real MongoDB: its URI (a secret) is set below, as the line asks
		}
		lines = append(lines, l)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "cd ") {
		t.Fatalf("second-terminal lines %q", lines)
	}

	// A second terminal: another folder, a clean environment (no
	// MONGODB_URI, no CAMPUS_DATA), then the lines as printed.
	sh := exec.Command("/bin/sh", "-c", "cd / && "+strings.Join(lines, " && "))
	sh.Dir = t.TempDir()
	sh.Env = systemtest.CleanEnv()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		sh.Env = append(sh.Env, "MONGODB_URI="+uri) // what the printed export line asks for
	}
	sh.Stdin = strings.NewReader("second-head\n\ncorrect-horse-battery\ncorrect-horse-battery\n")
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Log in at http://nairobi.school.localhost:"+d.proxyPort+"/admin/\n") {
		t.Fatalf("second terminal: %v\n%s", err, out)
	}
	b := d.browser("nairobi.school.localhost")
	b.login("second-head", "correct-horse-battery")

	// Backups, restores and the fleet migration from that terminal reach
	// the same embedded database (its address from dev.json, on
	// --mongo-listen's non-default port), never 127.0.0.1:27017 (issue 21).
	var setup []string // the cd and export lines, without createsuperuser
	for _, l := range lines {
		if strings.HasPrefix(l, "cd ") || strings.HasPrefix(l, "export ") {
			setup = append(setup, l)
		}
	}
	archive := filepath.Join(t.TempDir(), "accra.campus.gz")
	for _, step := range []struct{ cmd, want string }{
		{"campus tenant backup accra -o " + archive, "Backed up tenant accra"},
		{"campus tenant restore " + archive + " --as accra-copy --host accra-copy.school.localhost", "Restored tenant accra-copy"},
		{"campus migrate --all", "tenants in"},
		{"campus tenant delete accra-copy --purge-data --yes", "Purged tenant accra-copy"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		sh := exec.CommandContext(ctx, "/bin/sh", "-c", "cd / && "+strings.Join(setup, " && ")+" && "+
			strings.Replace(step.cmd, "campus", shellQuote(campusBin), 1))
		sh.Dir = t.TempDir()
		sh.Env = systemtest.CleanEnv()
		if uri := os.Getenv("MONGODB_URI"); uri != "" {
			sh.Env = append(sh.Env, "MONGODB_URI="+uri)
		}
		start := time.Now()
		out, err := sh.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), step.want) {
			t.Errorf("second terminal: %s: %v after %v\n%s", step.cmd, err, time.Since(start).Round(time.Millisecond), out)
		}
	}

	// The wrong folder: nothing created, the folder named.
	wrong := exec.Command(campusBin, "manage", "nairobi", "createsuperuser")
	wrong.Dir = t.TempDir()
	wrong.Env = systemtest.CleanEnv()
	out, err = wrong.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no Campus data folder at "+filepath.Join(wrong.Dir, ".campus")) {
		t.Fatalf("from the wrong folder: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(wrong.Dir, ".campus")); !os.IsNotExist(err) {
		t.Fatalf("manage created .campus in the wrong folder (stat: %v)", err)
	}
}

// waitForOutput waits until campus dev's output holds s and returns it.
func (d *devSystem) waitForOutput(s string, timeout time.Duration) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := d.WaitUntil(ctx, fmt.Sprintf("campus dev printing %q within %v", s, timeout), func(context.Context) error {
		if !strings.Contains(d.Output(), s) {
			return errors.New("not printed yet")
		}
		return nil
	}); err != nil {
		d.t.Fatal(err)
	}
	return d.Output()
}
