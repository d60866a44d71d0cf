//go:build !unix

package supervisor

import (
	"os"
	"os/exec"
)

// Without process groups and signals the child is killed outright.

func setProcAttr(*exec.Cmd) {}

func terminate(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func kill(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func exitSignal(*os.ProcessState) string { return "" }
