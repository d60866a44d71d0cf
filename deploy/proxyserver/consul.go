package proxyserver

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/campus-saas/campus/registry/consul"
)

// AdminAddress is the admin address the proxy registers: advertise when
// set, else the admin listener's address, which must then name a host
// (a wildcard such as 0.0.0.0 or [::] reaches nobody).
func AdminAddress(advertise string, admin net.Addr) (string, error) {
	addr := advertise
	if addr == "" {
		addr = admin.String()
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("advertised admin address %q: %w", addr, err)
	}
	if WildcardHost(addr) {
		return "", fmt.Errorf("advertised admin address %s is a wildcard address that Consul and Prometheus cannot dial", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("advertised admin address %q: bad port", addr)
	}
	return addr, nil
}

// WildcardHost tells whether a listen address has no host or an
// unspecified one (0.0.0.0, ::).
func WildcardHost(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// selfRegister registers the proxy of cfg, whose admin listener is admin,
// in Consul until the returned function is called.
func selfRegister(ctx context.Context, cfg Config, admin net.Addr) (func(), error) {
	addr, err := AdminAddress(cfg.AdminAdvertise, admin)
	if err != nil {
		return nil, err
	}
	reg, err := consul.ProxyService(addr, cfg.CheckInterval)
	if err != nil {
		return nil, err
	}
	return cfg.Consul.KeepServiceUntilStopped(ctx, reg, cfg.Logger), nil
}
