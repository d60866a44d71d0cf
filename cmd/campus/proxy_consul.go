package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
)

// proxyAdvertise is the admin address the proxy registers: advertise when
// set, else the admin listener's address, which must then name a host
// (a wildcard such as 0.0.0.0 or [::] reaches nobody).
func proxyAdvertise(advertise string, admin net.Addr) (string, error) {
	addr := advertise
	if addr == "" {
		addr = admin.String()
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("advertised admin address %q: %w", addr, err)
	}
	if wildcardHost(addr) {
		return "", errWildcardAdmin(addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("advertised admin address %q: bad port", addr)
	}
	return addr, nil
}

func errWildcardAdmin(addr string) error {
	return usageErr("the admin listener %s is a wildcard address that Consul and Prometheus cannot dial: set --admin-advertise to the host:port they reach it at, or --register=false", addr)
}

// check refuses, before anything starts, a proxy that would register a
// wildcard admin address in Consul, or whose --trusted-proxies do not
// parse (it keeps the parsed list).
func (o *proxyOptions) check(backend string) error {
	if backend == "consul" && o.registerSelf && o.adminAdvertise == "" && wildcardHost(o.adminListen) {
		return errWildcardAdmin(o.adminListen)
	}
	trusted, err := proxy.ParseTrustedProxies(o.trustedProxies)
	if err != nil {
		return usageErr("--trusted-proxies: %v", err)
	}
	o.trusted = trusted
	return nil
}

// wildcardHost tells whether a listen address has no host or an
// unspecified one (0.0.0.0, ::).
func wildcardHost(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// selfRegisterProxy registers the proxy of po, whose admin listener is
// admin, in Consul until the returned function is called.
func selfRegisterProxy(ctx context.Context, po proxyOptions, admin net.Addr, logger *slog.Logger) (func(), error) {
	addr, err := proxyAdvertise(po.adminAdvertise, admin)
	if err != nil {
		return nil, err
	}
	reg, err := consul.ProxyService(addr, po.checkInterval)
	if err != nil {
		return nil, err
	}
	return po.consulReg.KeepServiceUntilStopped(ctx, reg, logger), nil
}
