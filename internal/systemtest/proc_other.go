//go:build !linux

package systemtest

import "os/exec"

func setProcAttr(*exec.Cmd) {}
