package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry/consul"
)

// The Consul service every proxy registers as. deploy/prometheus's job
// campus-proxy discovers it and scrapes the address and metrics_port it
// names (the admin listener: /metrics, /healthz, /routes). Nomad registers
// its proxies under the same name and meta itself (--register=false there).
const (
	proxyServiceName     = "campus-proxy"
	proxyMetricsPortMeta = "metrics_port"
	proxyCheckTimeout    = 3 * time.Second
	proxyKeepEvery       = consul.DefaultKeepEvery
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

// proxyRegistration is the proxy's Consul service: at its advertised
// admin address, metrics_port naming the same port, with an HTTP check on
// /healthz.
func proxyRegistration(addr string, checkInterval time.Duration) (*api.AgentServiceRegistration, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("proxy registration: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("proxy registration: port of %q: %w", addr, err)
	}
	if checkInterval <= 0 {
		checkInterval = consul.DefaultCheckInterval
	}
	return &api.AgentServiceRegistration{
		ID:      proxyServiceName + "-" + addr,
		Name:    proxyServiceName,
		Tags:    []string{"campus"},
		Address: host,
		Port:    port,
		Meta:    map[string]string{proxyMetricsPortMeta: portStr},
		Check: &api.AgentServiceCheck{
			Name:                           "campus proxy /healthz",
			HTTP:                           "http://" + addr + "/healthz",
			Interval:                       checkInterval.String(),
			Timeout:                        proxyCheckTimeout.String(),
			DeregisterCriticalServiceAfter: consul.DefaultDeregisterCriticalAfter.String(),
		},
	}, nil
}

// selfRegisterProxy registers the proxy of po, whose admin listener is
// admin, in Consul until the returned function is called.
func selfRegisterProxy(ctx context.Context, po proxyOptions, admin net.Addr, logger *slog.Logger) (func(), error) {
	addr, err := proxyAdvertise(po.adminAdvertise, admin)
	if err != nil {
		return nil, err
	}
	reg, err := proxyRegistration(addr, po.checkInterval)
	if err != nil {
		return nil, err
	}
	return registerProxy(ctx, po.consulReg, reg, logger), nil
}

// registerProxy registers the proxy with the local Consul agent and keeps
// it registered (an agent restarted without its data forgets services)
// until the returned stop function is called, which deregisters it. stop
// waits for the deregistration, at most about 5 s.
func registerProxy(ctx context.Context, cr *consul.Registry, reg *api.AgentServiceRegistration, logger *slog.Logger) func() {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cr.KeepServiceRegistered(ctx, reg, proxyKeepEvery, logger); err != nil {
			logger.Warn("proxy registration", "err", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
