package systemtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say how to start a process. The zero value runs it in the
// current directory with the current environment, stopped with SIGTERM and
// killed 10 s later.
type Options struct {
	Dir   string    // working directory
	Env   []string  // the whole environment; nil: the test's own
	Stdin io.Reader // nil: no input
	// Log, when set, also receives the output (a log file kept after the
	// test, say); the output is kept in memory either way.
	Log io.Writer
	// StopSignal asks the process to end (default SIGTERM); StopTimeout is
	// how long it has before SIGKILL (default 10 s).
	StopSignal  os.Signal
	StopTimeout time.Duration
	// TailBytes is how much of the output a failed test logs (default 6000).
	TailBytes int
}

// Process is a long-running command started by a test, with its output.
type Process struct {
	Name string
	argv []string
	opts Options
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error
}

// Start starts argv. name says what it is in messages.
func Start(name string, argv []string, opts Options) (*Process, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", name)
	}
	if opts.StopSignal == nil {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.TailBytes <= 0 {
		opts.TailBytes = 6000
	}
	p := &Process{Name: name, argv: argv, opts: opts, out: &Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir, p.cmd.Env, p.cmd.Stdin = opts.Dir, opts.Env, opts.Stdin
	var w io.Writer = p.out
	if opts.Log != nil {
		w = io.MultiWriter(p.out, opts.Log)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// A grandchild that keeps the output pipe open does not hold Wait
	// (and so Stop) past this.
	p.cmd.WaitDelay = 5 * time.Second
	setProcAttr(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// StartForTest starts argv until the test ends: the cleanup stops it
// (Stop) and, when the test failed, logs the tail of its output. A process
// that cannot start fails the test.
func StartForTest(tb TB, name string, argv []string, opts Options) *Process {
	tb.Helper()
	p, err := Start(name, argv, opts)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			p.LogTail(tb)
		}
	})
	return p
}

// LogTail writes the tail of the output into the test log.
func (p *Process) LogTail(tb TB) {
	tb.Logf("---- output of %s (%s) ----\n%s", p.Name, strings.Join(p.argv, " "), Tail(p.out.String(), p.opts.TailBytes))
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// Buffer is the process's output, for tests that read it as it grows.
func (p *Process) Buffer() *Buffer { return p.out }

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (Wait's error); nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig to a running process.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stop ends the process with its stop signal, then SIGKILL after its stop
// timeout. It returns an error when the process had to be killed.
func (p *Process) Stop() error { return p.StopWith(p.opts.StopSignal, p.opts.StopTimeout) }

// StopWith is Stop with another signal and grace period.
func (p *Process) StopWith(sig os.Signal, within time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(within):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of %v; killed", p.Name, within, sig)
	}
}

// WaitUntil polls ready every PollInterval until it returns nil, the
// process exits or ctx ends; the error names what, the last failure and
// the tail of the output.
func (p *Process) WaitUntil(ctx context.Context, what string, ready func(context.Context) error) error {
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s: %s exited (%v) before it was ready:\n%s", what, p.Name, p.err, Tail(p.out.String(), 4000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready (%v) when %v:\n%s", what, last, ctx.Err(), Tail(p.out.String(), 4000))
		case <-p.done:
		case <-time.After(PollInterval):
		}
	}
}

// Buffer is a goroutine-safe bytes.Buffer, for output written by one
// goroutine and read by another.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Tail is the last n bytes of s, marked with … when cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
