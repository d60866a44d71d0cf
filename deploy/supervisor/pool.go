package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/campus-saas/campus/registry"
)

// The pool (issue 12, cold starts): a few processes started ahead of need
// that hold no tenant, no record, no credential and no database
// connection (their environment is the allowlist of ChildEnv, their
// arguments name no tenant). A start takes one, if one is ready, and binds
// it to the tenant for the rest of its life by writing one line, the
// assignment (the tenant's record and its own database URI, nothing else),
// to its stdin and closing it. A bound process is the tenant's child like
// any other: when that child ends (idle stop, crash, suspension) the
// process is stopped, never returned to the pool, so it can never serve
// another tenant. The one-process-one-tenant rule stays.

// PoolConfig configures the pool; Size 0 means no pool.
type PoolConfig struct {
	// Size is how many unbound processes to keep ready.
	Size int
	// Command builds the command of one unbound process. It must read
	// one assignment line from stdin, then serve; stdin, Stdout, Stderr
	// and Env are set like Config.Command's (Env: ChildEnv(nil) when nil,
	// never the assignment's secrets).
	Command func() *exec.Cmd
	// Assignment is the line that binds a process to tenant t on the
	// listen address: it may carry t's record and t's credentials only.
	Assignment func(t registry.Tenant, listen string) ([]byte, error)
}

// proc is one started child process.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once reaped
	stdin  io.WriteCloser
	cg     *cgroup // its memory-limit group; nil: none (budget.go)
}

// startProc starts cmd with the supervisor's process settings and reaps
// it in a goroutine.
func (s *Supervisor) startProc(cmd *exec.Cmd, withStdin bool) (*proc, error) {
	if cmd == nil {
		return nil, errors.New("build child command: Command returned nil")
	}
	if cmd.Process != nil {
		return nil, errors.New("build child command: Command returned a started command")
	}
	if cmd.Env == nil {
		// Never the whole environment of the supervisor.
		cmd.Env = ChildEnv(nil)
	}
	setProcAttr(cmd)
	stdout, stderr := &lineWriter{out: s.out}, &lineWriter{out: s.out}
	if cmd.Stdout == nil {
		cmd.Stdout = stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = stderr
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = waitDelay
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	if withStdin {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		p.stdin = w
	}
	if err := cmd.Start(); err != nil {
		if p.stdin != nil {
			p.stdin.Close()
		}
		return nil, err
	}
	s.met.running.Inc()
	go func() {
		_ = cmd.Wait() // the outcome is in cmd.ProcessState
		stdout.flush()
		stderr.flush()
		s.met.running.Dec()
		close(p.exited)
	}()
	return p, nil
}

// launch starts t's process on addr: a pooled one bound now when one is
// ready, else a new one from Config.Command. pooled says which.
func (s *Supervisor) launch(t registry.Tenant, addr, name string) (p *proc, pooled bool, err error) {
	defer func() {
		if err == nil {
			s.confine(p, t, name)
		}
	}()
	// A pooled process has the default GOMEMLIMIT: a tenant with a limit
	// of its own gets a new process.
	for s.pool != nil && s.memoryLimit(t) == s.cfg.Memory {
		var cand *proc
		select {
		case cand = <-s.pool:
			s.met.poolReady.Dec()
		default:
		}
		if cand == nil {
			break
		}
		if err := s.bind(cand, t, addr); err != nil {
			s.log.Warn("bind pooled process failed; trying another", "tenant", t.Name, "pid", cand.cmd.Process.Pid, "err", err)
			_ = kill(cand.cmd)
			<-cand.exited
			continue
		}
		s.met.poolBound.Inc()
		return cand, true, nil
	}
	cmd := s.cfg.Command(t, addr)
	withMemoryLimit(cmd, s.memoryLimit(t))
	p, err = s.startProc(cmd, false)
	return p, false, err
}

// bind writes the assignment and closes stdin: the process now belongs to
// t for good.
func (s *Supervisor) bind(p *proc, t registry.Tenant, addr string) error {
	select {
	case <-p.exited:
		return errors.New("the pooled process has exited")
	default:
	}
	line, err := s.cfg.Pool.Assignment(t, addr)
	if err != nil {
		return fmt.Errorf("build assignment: %w", err)
	}
	_, werr := p.stdin.Write(append(line, '\n'))
	cerr := p.stdin.Close()
	p.stdin = nil
	return errors.Join(werr, cerr)
}

// runPool keeps Pool.Size unbound processes ready until ctx ends, then
// kills the unbound ones.
func (s *Supervisor) runPool(ctx context.Context) {
	defer func() {
		for {
			select {
			case p := <-s.pool:
				s.met.poolReady.Dec()
				_ = kill(p.cmd)
				<-p.exited
			default:
				return
			}
		}
	}()
	failures := 0
	for {
		// Wait for room: the channel's capacity is the pool size.
		for len(s.pool) >= cap(s.pool) {
			if !sleep(ctx, 5*time.Millisecond) {
				return
			}
		}
		// Pre-starts take a start slot like any start, after the woken
		// ones.
		release, ok := s.gate.acquire(ctx, &child{s: s})
		if !ok {
			return
		}
		cmd := s.cfg.Pool.Command()
		withMemoryLimit(cmd, s.cfg.Memory)
		p, err := s.startProc(cmd, true)
		release()
		if err != nil {
			failures++
			d := backoff(failures, s.cfg.BackoffMin, s.cfg.BackoffMax)
			s.log.Error("pre-start pool process failed", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		failures = 0
		s.log.Debug("pool process ready", "pid", p.cmd.Process.Pid)
		select {
		case s.pool <- p:
			s.met.poolReady.Inc()
		case <-ctx.Done():
			_ = kill(p.cmd)
			<-p.exited
			return
		}
	}
}
