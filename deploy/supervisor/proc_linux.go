package supervisor

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group, so that signals
// reach the whole group and a terminal's Ctrl-C reaches only the
// supervisor, and has the kernel SIGKILL it when the supervisor dies.
//
// Pdeathsig fires when the OS thread that started the child exits. The Go
// runtime only ends threads of goroutines that exit while locked to them
// (runtime.LockOSThread), which this process does not do.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
