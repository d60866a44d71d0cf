package systemtest

import (
	"fmt"
	"net"
	"strconv"
)

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (all n are held open until the last is found, so they differ). A
// server that then fails to bind one should be started again on new ports.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns one loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ps, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}

// FreeAddr returns "127.0.0.1:PORT" with a port that was free a moment
// ago, failing the test when there is none.
func FreeAddr(tb TB) string {
	tb.Helper()
	p, err := FreePort()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// freeAddrs returns n distinct loopback addresses.
func freeAddrs(n int) ([]string, error) {
	ps, err := FreePorts(n)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i, p := range ps {
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out, nil
}
