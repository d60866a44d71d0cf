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
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
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
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("engines: cannot locate build.sh")
	}
	script := filepath.Join(filepath.Dir(file), "build.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, name)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("engines: building %s with %s: %v\n%s", name, script, err, tail(stderr.String(), 4000))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if p, ok := strings.CutPrefix(line, name+"="); ok {
			binPath[name] = p
			return p, nil
		}
	}
	return "", fmt.Errorf("engines: %s printed no %s= line:\n%s", script, name, stdout.String())
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago. Servers that fail to bind one are started again on new ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a started engine: its command, log and exit.
type process struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error
}

func startProcess(bin string, args []string, dir string) (*process, error) {
	p := &process{cmd: exec.Command(bin, args...), log: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Only what the engine needs of ours: no tokens or secrets of the
	// caller's environment.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	setProcAttr(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end and kills it if it has not within 15 s.
func (p *process) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitUntil polls ready every 50 ms until it returns nil, the process exits,
// or ctx ends.
func (p *process) waitUntil(ctx context.Context, what string, ready func(context.Context) error) error {
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s: the process exited (%v) before it was ready:\n%s", what, p.err, tail(p.log.String(), 4000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready (%v) when %v:\n%s", what, last, ctx.Err(), tail(p.log.String(), 4000))
		case <-time.After(50 * time.Millisecond):
		}
	}
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

// TB is the part of testing.TB the *ForTest helpers use. It is declared
// here so that this package does not import testing: `campus bench
// routing --start-consul` links it into the campus binary.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}
