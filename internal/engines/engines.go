// Package engines starts the real servers the test suite runs against:
// HashiCorp Consul (v1.16.3, the last MPL-2.0 release) and Prometheus, each
// built once per machine from the Go module proxy by build.sh beside this
// file and cached outside the clone. Nothing here is a stand-in: a test that
// asks for Consul gets a dev-mode agent on free loopback ports, with ACLs
// (default deny) when it asks for them.
//
// Binaries are found, in order, from CAMPUS_CONSUL_BIN / CAMPUS_PROMETHEUS_BIN,
// or by running build.sh (which returns at once when the cache is warm). A
// build that fails fails the test with build.sh's message: no test skips for
// want of an engine.
package engines

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// BinaryEnv names, per engine, the environment variable that overrides the
// binary build.sh would give.
var BinaryEnv = map[string]string{
	"consul":     "CAMPUS_CONSUL_BIN",
	"prometheus": "CAMPUS_PROMETHEUS_BIN",
}

var (
	binMu   sync.Mutex
	binPath = map[string]string{}
)

// Binary returns the path of engine name ("consul" or "prometheus"),
// building it with build.sh when the per-machine cache does not have it.
func Binary(name string) (string, error) {
	env, ok := BinaryEnv[name]
	if !ok {
		return "", fmt.Errorf("engines: unknown engine %q", name)
	}
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	binMu.Lock()
	defer binMu.Unlock()
	if p := binPath[name]; p != "" {
		return p, nil
	}
	root, err := systemtest.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("engines: locate build.sh: %w", err)
	}
	script := filepath.Join(root, "internal", "engines", "build.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, name)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("engines: building %s with %s: %v\n%s", name, script, err, systemtest.Tail(stderr.String(), 4000))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if p, ok := strings.CutPrefix(line, name+"="); ok {
			binPath[name] = p
			return p, nil
		}
	}
	return "", fmt.Errorf("engines: %s printed no %s= line:\n%s", script, name, stdout.String())
}

// startProcess starts an engine in dir with only what it needs of our
// environment (no tokens or secrets of the caller's), interrupted to stop
// and killed 15 s later, and killed with the test binary (Linux).
func startProcess(bin string, args []string, dir string) (*systemtest.Process, error) {
	return systemtest.Start(filepath.Base(bin), append([]string{bin}, args...), systemtest.Options{
		Dir:         dir,
		Env:         []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir},
		StopSignal:  os.Interrupt,
		StopTimeout: 15 * time.Second,
	})
}

// TB is the part of testing.TB the *ForTest helpers use
// (`campus-bench routing --start-consul` links this package).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}
