package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// repoRoot is the repository's root directory.
	repoRoot string
	// campusBin is the campus binary, built once by TestMain the way the
	// Dockerfile builds it (CGO_ENABLED=0).
	campusBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "deploytest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	campusBin = filepath.Join(dir, "campus")
	build := exec.Command("go", "build", "-o", campusBin, "./cmd/campus")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/campus: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needCampus returns the campus binary, or fails the test when it did not
// build.
func needCampus(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return campusBin
}

// repoPath is a path under the repository root.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot}, elem...)...)
}

// result is how a command ended.
type result struct {
	code     int // exit code; -1 when killed after the timeout
	timedOut bool
	stdout   string
	stderr   string
}

// runCampus runs the campus binary with exactly env (plus PATH and HOME) in
// a fresh directory, killing it after timeout.
func runCampus(t testing.TB, args []string, env map[string]string, timeout time.Duration) result {
	t.Helper()
	bin := needCampus(t)
	return runCommand(t, append([]string{bin}, args...), env, timeout)
}

func runCommand(t testing.TB, argv []string, env map[string]string, timeout time.Duration) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = t.TempDir()
	cmd.Env = environ(t, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.code, r.timedOut = -1, true
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", strings.Join(argv, " "), err)
	}
	return r
}

// environ is a minimal environment: env, a PATH that finds the campus
// binary first and the system's tools, and a private HOME.
func environ(t testing.TB, env map[string]string) []string {
	out := []string{
		"PATH=" + filepath.Dir(campusBin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + t.TempDir(),
	}
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// checkAccepted runs a campus command line with its environment and fails
// the test when campus refuses them as a usage error (exit code 2): an
// unknown flag, a bad value, a missing required flag or a bad CAMPUS_*
// variable. Anything after flag parsing (exit 1 because nothing is
// reachable, or still running at the timeout) is acceptance.
func checkAccepted(t *testing.T, what string, args []string, env map[string]string) {
	t.Helper()
	r := runCampus(t, args, env, 3*time.Second)
	if r.code == 2 {
		t.Errorf("%s: campus refused `campus %s` (exit 2, a usage error):\n%s%s",
			what, strings.Join(args, " "), r.stdout, r.stderr)
	}
}

var (
	helpEnvMu    sync.Mutex
	helpEnvCache = map[string]map[string]bool{}
	helpEnvRE    = regexp.MustCompile(`\[\$([A-Z0-9_]+)\]`)
)

// helpEnv returns the environment variables `campus <cmd...> --help` lists
// for its flags.
func helpEnv(t *testing.T, cmd ...string) map[string]bool {
	t.Helper()
	key := strings.Join(cmd, " ")
	helpEnvMu.Lock()
	defer helpEnvMu.Unlock()
	if m, ok := helpEnvCache[key]; ok {
		return m
	}
	r := runCampus(t, append(append([]string{}, cmd...), "--help"), nil, 10*time.Second)
	if r.code != 0 {
		t.Fatalf("campus %s --help: exit %d\n%s%s", key, r.code, r.stdout, r.stderr)
	}
	m := map[string]bool{}
	for _, sm := range helpEnvRE.FindAllStringSubmatch(r.stdout+r.stderr, -1) {
		m[sm[1]] = true
	}
	if len(m) == 0 {
		t.Fatalf("campus %s --help lists no environment variables:\n%s%s", key, r.stdout, r.stderr)
	}
	helpEnvCache[key] = m
	return m
}

// ecosystemEnv are variables campus reads through the libraries of their
// own ecosystems rather than its flags.
var ecosystemEnv = map[string]bool{
	"CONSUL_HTTP_ADDR":       true,
	"CONSUL_HTTP_TOKEN":      true,
	"CONSUL_HTTP_TOKEN_FILE": true,
	"CONSUL_HTTP_SSL":        true,
	"CONSUL_CACERT":          true,
}

// checkEnvNames fails for every CAMPUS_* or MONGODB_* variable of env that
// the campus command does not read (a typo would be silently ignored).
func checkEnvNames(t *testing.T, what string, env map[string]string, cmds ...[]string) {
	t.Helper()
	known := map[string]bool{}
	for _, c := range cmds {
		for k := range helpEnv(t, c...) {
			known[k] = true
		}
	}
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "CAMPUS_") && !strings.HasPrefix(k, "MONGODB_") && !strings.HasPrefix(k, "CONSUL_") {
			continue
		}
		if !known[k] && !ecosystemEnv[k] {
			t.Errorf("%s: environment variable %s is not read by campus %v (see --help)", what, k, cmds)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// process is a long-running command started by a test.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs argv until the test ends (SIGTERM, then SIGKILL after 10s).
// Its output is logged when the test fails.
func start(t *testing.T, name string, argv []string, env map[string]string) *process {
	t.Helper()
	p := &process{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = environ(t, env)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("---- output of %s (%s) ----\n%s", name, strings.Join(argv, " "), tail(p.out.String(), 6000))
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// eventually polls f until it returns nil or the deadline passes, and
// returns f's last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
