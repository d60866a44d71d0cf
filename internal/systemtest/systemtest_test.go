package systemtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopSignalThenKill(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantKilled bool
		wantOutput string
	}{
		{"ends on SIGTERM", `trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done`, false, "got-term"},
		{"ignores SIGTERM, killed", `trap '' TERM; echo started; while :; do sleep 0.05; done`, true, "started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start("sh", []string{"sh", "-c", tt.script}, Options{StopTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.WaitUntil(ctx, "started", func(context.Context) error {
				if !strings.Contains(p.Output(), "started") {
					return errors.New("not yet")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			err = p.Stop()
			if killed := err != nil; killed != tt.wantKilled {
				t.Errorf("Stop: %v, want killed=%v", err, tt.wantKilled)
			}
			if !p.Exited() {
				t.Error("still running after Stop")
			}
			if !strings.Contains(p.Output(), tt.wantOutput) {
				t.Errorf("output %q lacks %q", p.Output(), tt.wantOutput)
			}
		})
	}
}

func TestWaitUntilGivesUpWhenTheProcessExits(t *testing.T) {
	p, err := Start("false", []string{"sh", "-c", "echo bye; exit 3"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = p.WaitUntil(ctx, "never", func(context.Context) error { return errors.New("not ready") })
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("WaitUntil = %v, want an error naming the exit and the output", err)
	}
	if ctx.Err() != nil {
		t.Fatal("WaitUntil waited for the deadline instead of the exit")
	}
	var ee interface{ ExitCode() int }
	if !errors.As(p.Err(), &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err = %v, want exit status 3", p.Err())
	}
}

func TestStartForTestLogsTailOnFailure(t *testing.T) {
	ft := &fakeTB{TB: t, failed: true}
	p := StartForTest(ft, "talker", []string{"sh", "-c", "echo first-line; echo last-line; sleep 60"},
		Options{TailBytes: 12, StopSignal: syscall.SIGKILL})
	if err := Eventually(time.Minute, func() error {
		if !strings.Contains(p.Output(), "last-line") {
			return errors.New("no output yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range ft.cleanups {
		f()
	}
	if !p.Exited() {
		t.Fatal("cleanup did not stop the process")
	}
	_, logged, _ := strings.Cut(ft.logged, "----\n")
	if !strings.Contains(logged, "last-line") || strings.Contains(logged, "first-line") {
		t.Errorf("logged %q, want only the tail with last-line", ft.logged)
	}
}

type fakeTB struct {
	TB
	failed   bool
	logged   string
	cleanups []func()
}

func (f *fakeTB) Cleanup(fn func())               { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool                    { return f.failed }
func (f *fakeTB) Logf(format string, args ...any) { f.logged += fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	n := 0
	if err := Eventually(time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Eventually = %v after %d calls, want nil after 3", err, n)
	}
	last := errors.New("still failing")
	if err := Eventually(10*time.Millisecond, func() error { return last }); err != last {
		t.Errorf("Eventually = %v, want the last error", err)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d repeated or invalid", ps, p)
		}
		seen[p] = true
	}
}

// The ports a test is given are never ones the kernel hands to a server
// listening on port 0 (see FreePorts).
func TestFreePortsOutsideEphemeralRange(t *testing.T) {
	lo, hi := reservedRange()
	if lo == hi {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range here: FreePorts falls back to the kernel's choice")
	}
	ps, err := FreePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p < lo || p >= hi {
			t.Errorf("port %d outside [%d, %d): the kernel may give it to a port-0 listener", p, lo, hi)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if k := l.Addr().(*net.TCPAddr).Port; k >= lo && k < hi {
		t.Errorf("the kernel gave port %d, inside FreePorts' range [%d, %d)", k, lo, hi)
	}
}

func TestChildren(t *testing.T) {
	p, err := Start("parent", []string{"sh", "-c", "sleep 61 & sleep 62 & echo forked; wait"}, Options{StopSignal: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	// A child forked but not yet exec'd still shows the shell's command
	// line: wait until both have become the sleeps (or the minute ends,
	// and the comparison below fails with what was seen).
	want := []string{"sleep 61", "sleep 62"}
	var (
		kids []Child
		got  []string
	)
	if err := Eventually(time.Minute, func() error {
		if kids, err = p.Children(); err != nil {
			return err
		}
		got = got[:0]
		for _, k := range kids {
			got = append(got, strings.Join(k.Args, " "))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("children %q, want %q", got, want)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	for _, k := range kids {
		syscall.Kill(k.Pid, syscall.SIGKILL)
	}
	if len(kids) == 0 {
		t.FailNow()
	}
	if own, err := Children(os.Getpid()); err != nil || slices.ContainsFunc(own, func(c Child) bool { return c.Pid == kids[0].Pid }) {
		t.Errorf("the test's own children %+v (%v) include a grandchild", own, err)
	}
}
