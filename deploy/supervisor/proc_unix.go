//go:build unix

package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// terminate sends SIGTERM to the child's process group.
func terminate(cmd *exec.Cmd) error { return signalGroup(cmd, syscall.SIGTERM) }

// kill sends SIGKILL to the child's process group.
func kill(cmd *exec.Cmd) error { return signalGroup(cmd, syscall.SIGKILL) }

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	pid := cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); err != nil {
		// The group may be gone with the leader not yet reaped; signal
		// the leader itself (safe against pid reuse).
		if err2 := cmd.Process.Signal(sig); err2 != nil && !errors.Is(err2, os.ErrProcessDone) {
			return err
		}
	}
	return nil
}

// exitSignal names the signal that ended the process, if one did.
func exitSignal(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String()
	}
	return ""
}
