package engines

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill the engine when the test process dies, so
// an interrupted test run leaves no agent behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
