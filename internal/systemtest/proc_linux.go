package systemtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill the process when the test binary dies, so
// an interrupted test run leaves nothing behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
