package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// TestReadmeOperatingIt follows the README as a newcomer would: its
// install lines (`go install ./cmd/campus` and the PATH line, from the
// first block that has them) in a clean shell with a GOPATH of its own,
// then `campus dev` with the binary they installed (systemtest, in a fresh
// folder), then every command of the section "Operating it", as written,
// each from a clean shell in that folder (the PATH line, then the command:
// a second terminal). Every command must exit 0 and print no build-cache
// path. Servers (campus dev, campus proxy, campus control) and the Consul-only token
// commands cannot run beside campus dev: their lines run with --help, so
// that their flags must still exist. The commands are read from README.md
// each time: a README that drifts from the program fails here.
func TestReadmeOperatingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test installs campus and starts the whole system; skipped with -short")
	}
	root, err := systemtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var install, pathLines []string
	for _, block := range shBlocks(string(readme)) {
		for _, l := range block {
			switch {
			case strings.HasPrefix(l, "go install "):
				install = append(install, l)
			case strings.HasPrefix(l, "export PATH="):
				pathLines = append(pathLines, l)
			}
		}
		if len(install) > 0 {
			break
		}
	}
	if len(install) != 1 || len(pathLines) != 1 {
		t.Fatalf("README: want one block with the `go install` line and the `export PATH=` line, got %q and %q", install, pathLines)
	}
	section, ok := readmeSection(string(readme), "## Operating it")
	if !ok {
		t.Fatal(`README has no section "## Operating it"`)
	}
	var commands []string
	for _, block := range shBlocks(section) {
		commands = append(commands, block...)
	}
	if len(commands) < 20 {
		t.Fatalf("README's Operating it: only %d commands found: %q", len(commands), commands)
	}

	// A clean shell: no CAMPUS_*, MONGODB_URI or CONSUL_* setting, a PATH
	// with go and the system only, the Go caches shared (nothing is
	// downloaded: GOPROXY=off), and a GOPATH of its own for go install.
	gopath := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	shellEnv := []string{
		"HOME=" + os.Getenv("HOME"),
		"PATH=" + filepath.Dir(goBin) + ":/usr/local/bin:/usr/bin:/bin",
		"GOPATH=" + gopath,
		"GOCACHE=" + goEnv(t, "GOCACHE"),
		"GOMODCACHE=" + goEnv(t, "GOMODCACHE"),
		"GOPROXY=off", "GOTOOLCHAIN=local",
		// What the reader has set for the commands that read a password.
		"CAMPUS_SUPERUSER_PASSWORD=readme-head-password",
		"CLERK_PASSWORD=readme-clerk-password",
	}
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		// A real MongoDB instead of the embedded one, as campus dev's
		// banner asks the second terminal to export.
		shellEnv = append(shellEnv, "MONGODB_URI="+uri)
	}
	sh := func(ctx context.Context, dir, script, stdin string) (string, error) {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		cmd.Dir, cmd.Env, cmd.Stdin = dir, shellEnv, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := sh(ctx, root, install[0]+"\n"+pathLines[0]+"\ncommand -v campus", "")
	bin := filepath.Join(gopath, "bin", "campus")
	if err != nil || strings.TrimSpace(out) != bin {
		t.Fatalf("README's install lines, then `command -v campus`: %v\n%s(want %s)", err, out, bin)
	}

	work := t.TempDir()
	// campus dev from the shell the install lines leave: campus on PATH.
	devEnv := append([]string{}, shellEnv...)
	devEnv[1] = "PATH=" + filepath.Join(gopath, "bin") + ":" + strings.TrimPrefix(shellEnv[1], "PATH=")
	dev := systemtest.DevForTest(t, systemtest.DevOptions{Bin: bin, Data: filepath.Join(work, ".campus"), Dir: work, Env: devEnv})
	if err := dev.WaitUntil(ctx, "campus dev's banner", func(context.Context) error {
		if !strings.Contains(dev.Output(), "Press Ctrl-C to stop.") {
			return errors.New("not printed yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if banner := dev.Output(); !strings.Contains(banner, "\n  campus manage nairobi createsuperuser\n") {
		t.Errorf("campus dev's banner does not say `campus manage nairobi createsuperuser`, the README's form:\n%s", banner)
	}
	// The reader's spreadsheets.
	for name, body := range map[string]string{
		"students.csv": "registration_no,first_name,second_name\nLG/001,Amaka,Obi\nLG/002,Tunde,Kamau\n",
		"edited.csv":   "Reg No;First Name;Surname\nLG/001;Amaka;Obi-Okafor\nLG/003;Ngozi;Adeyemi\n",
	} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What the reader types where a command asks.
	answers := map[string]string{
		"campus manage lagos changepassword head": "readme-new-password\nreadme-new-password\n",
		"campus tenant delete lagos --purge-data": "lagos\n",
	}
	// What some commands must print: the values in force, the commit.
	wants := map[string][]string{
		"campus tenant list":                       {"15m", "512MiB"}, // campus dev's defaults, not "default"
		"campus tenant set lagos --idle-timeout 0": {"never"},
		"campus version":                           {"campus ", "commit"},
	}
	for _, line := range commands {
		run := line
		cmd, _, _ := strings.Cut(line, " #")
		cmd = strings.TrimSpace(cmd)
		if server := strings.HasPrefix(line, "campus dev") || strings.HasPrefix(line, "campus proxy") ||
			strings.HasPrefix(line, "campus control") || strings.HasPrefix(line, "campus token"); server {
			run = cmd + " --help"
		}
		stdin := ""
		for prefix, a := range answers {
			if strings.HasPrefix(line, prefix) {
				stdin = a
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
		start := time.Now()
		out, err := sh(cctx, work, pathLines[0]+"\n"+run, stdin)
		ccancel()
		if err != nil {
			t.Fatalf("README line %q (ran %q) after %v: %v\n%s", line, run, time.Since(start).Round(time.Millisecond), err, out)
		}
		if strings.Contains(out, "go-build") || strings.Contains(out, "go run") {
			t.Errorf("README line %q printed a build-cache path or `go run`:\n%s", line, out)
		}
		for _, want := range wants[cmd] {
			if !strings.Contains(out, want) {
				t.Errorf("README line %q printed no %q:\n%s", line, want, out)
			}
		}
		t.Logf("%s  (%v)", line, time.Since(start).Round(time.Millisecond))
	}
}

// shBlocks are the commands of each ```sh block of markdown: its lines
// without the empty ones and whole-line comments.
func shBlocks(markdown string) [][]string {
	var blocks [][]string
	var cur []string
	in := false
	for _, l := range strings.Split(markdown, "\n") {
		switch t := strings.TrimSpace(l); {
		case !in && t == "```sh":
			in, cur = true, nil
		case in && t == "```":
			in = false
			blocks = append(blocks, cur)
		case in && t != "" && !strings.HasPrefix(t, "#"):
			cur = append(cur, t)
		}
	}
	return blocks
}

// readmeSection is markdown from the heading to the next heading of its
// level.
func readmeSection(markdown, heading string) (string, bool) {
	i := strings.Index(markdown, "\n"+heading+"\n")
	if i < 0 {
		return "", false
	}
	rest := markdown[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest, true
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
