package systemtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Child is a process whose parent is a given process: its id and command
// line (nil when it could not be read, for a zombie say).
type Child struct {
	Pid  int
	Args []string
}

// Children lists the processes whose parent is pid, from /proc (Linux
// only: elsewhere it returns an error). Processes that end while it reads
// are left out.
func Children(pid int) ([]Child, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list the children of %d: %w", pid, err)
	}
	parent := strconv.Itoa(pid)
	var out []Child
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != parent {
			continue
		}
		c := Child{Pid: child}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && len(cmdline) > 0 {
			c.Args = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		}
		out = append(out, c)
	}
	return out, nil
}

// Children lists the process's own children (see Children).
func (p *Process) Children() ([]Child, error) { return Children(p.Pid()) }
