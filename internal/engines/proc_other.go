//go:build !linux

package engines

import "os/exec"

func setProcAttr(*exec.Cmd) {}
