package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
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
	root, err := systemtest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = root
	// A failed build fails the tests that need the binary (needCampus),
	// not the static checks of the deployment files.
	bin, err := systemtest.BuildCampus("CGO_ENABLED=0")
	if err != nil {
		buildErr = err
	} else {
		campusBin = bin.Path
	}
	code := m.Run()
	bin.Remove()
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
func freeAddr(t testing.TB) string { return systemtest.FreeAddr(t) }

// start runs argv until the test ends (SIGTERM, then SIGKILL after 10s), in
// a fresh directory with exactly env (see environ). Its output is logged
// when the test fails.
func start(t *testing.T, name string, argv []string, env map[string]string) *systemtest.Process {
	t.Helper()
	return systemtest.StartForTest(t, name, argv, systemtest.Options{Dir: t.TempDir(), Env: environ(t, env)})
}

// eventually polls f until it returns nil or the deadline passes, and
// returns f's last error.
func eventually(timeout time.Duration, f func() error) error {
	return systemtest.Eventually(timeout, f)
}
