//go:build !linux

package supervisor

import "errors"

// Outside Linux there are no cgroups: only GOMEMLIMIT is set.

type cgroups struct{}

type cgroup struct{}

func openCgroups() (*cgroups, error) { return nil, errors.New("cgroups are Linux only") }

func (*cgroups) close() {}

func (*cgroups) create(string, int64) (*cgroup, error) {
	return nil, errors.New("cgroups are Linux only")
}

func (*cgroup) add(int) error { return nil }

func (*cgroup) oomKills() int { return 0 }

func (*cgroup) remove() {}

// MachineMemory is unknown outside Linux (0).
func MachineMemory() int64 { return 0 }
