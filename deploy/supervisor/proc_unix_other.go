//go:build unix && !linux

package supervisor

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group. Outside Linux there
// is no Pdeathsig: children outlive a supervisor killed with SIGKILL.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
}
