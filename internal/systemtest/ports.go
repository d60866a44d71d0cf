package systemtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (all n are held open until the last is found, so they differ). A
// server that then fails to bind one should be started again on new ports.
//
// The ports are drawn below the kernel's ephemeral range (Linux's
// ip_local_port_range), where nothing that listens on port 0 — the
// supervisor's app children, Consul, httptest servers — is ever given one:
// a port handed to a test and released until its server starts cannot be
// taken by them meanwhile (TestLiveSystem lost its proxy's admin port to a
// dev app child that way). Elsewhere, or when that range is unknown, they
// are the kernel's choice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := reservedRange()
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 100*n {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: draw again
			}
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// reservedRange is where FreePorts draws from: [lo, hi), below the
// ephemeral range and above the well-known and registered ports most
// services use; lo == hi when it cannot be known.
func reservedRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first <= 12000 {
		return 0, 0
	}
	return 10000, first
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
