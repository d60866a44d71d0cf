package proxyserver

import (
	"net"
	"testing"
)

func TestAdminAddress(t *testing.T) {
	t.Parallel()
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		advertise, admin, want string // want "" means refused
	}{
		{"", "127.0.0.1:8001", "127.0.0.1:8001"},
		{"", "0.0.0.0:8001", ""},
		{"", "[::]:8001", ""},
		{"proxy:8001", "0.0.0.0:8001", "proxy:8001"},
		{"10.0.0.5:9001", "[::]:8001", "10.0.0.5:9001"},
		{"0.0.0.0:8001", "127.0.0.1:8001", ""},
		{"proxy", "127.0.0.1:8001", ""},
		{"proxy:0", "127.0.0.1:8001", ""},
	} {
		got, err := AdminAddress(tc.advertise, tcp(tc.admin))
		if tc.want == "" {
			if err == nil {
				t.Errorf("advertise %q, admin %s: %q, want refused", tc.advertise, tc.admin, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("advertise %q, admin %s: %q, %v; want %q", tc.advertise, tc.admin, got, err, tc.want)
		}
	}
}
