package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// The Consul service every proxy registers as. deploy/prometheus's job
// campus-proxy discovers it and scrapes the address and metrics_port it
// names (the admin listener: /metrics, /healthz, /routes). Nomad registers
// its proxies under the same name and meta itself (--register=false there).
const (
	ProxyServiceName     = "campus-proxy"
	ProxyMetricsPortMeta = "metrics_port"
	proxyCheckTimeout    = 3 * time.Second
)

// ProxyService is a proxy's Consul service: at its advertised admin
// address addr, metrics_port naming the same port, with an HTTP check on
// /healthz every checkInterval (DefaultCheckInterval when 0).
func ProxyService(addr string, checkInterval time.Duration) (*api.AgentServiceRegistration, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("proxy registration: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("proxy registration: port of %q: %w", addr, err)
	}
	if checkInterval <= 0 {
		checkInterval = DefaultCheckInterval
	}
	return &api.AgentServiceRegistration{
		ID:      ProxyServiceName + "-" + addr,
		Name:    ProxyServiceName,
		Tags:    []string{"campus"},
		Address: host,
		Port:    port,
		Meta:    map[string]string{ProxyMetricsPortMeta: portStr},
		Check: &api.AgentServiceCheck{
			Name:                           "campus proxy /healthz",
			HTTP:                           "http://" + addr + "/healthz",
			Interval:                       checkInterval.String(),
			Timeout:                        proxyCheckTimeout.String(),
			DeregisterCriticalServiceAfter: DefaultDeregisterCriticalAfter.String(),
		},
	}, nil
}

// KeepServiceUntilStopped keeps reg registered with the local agent (see
// KeepServiceRegistered) until stop is called, which deregisters it and
// waits for that, at most about 5 s.
func (r *Registry) KeepServiceUntilStopped(ctx context.Context, reg *api.AgentServiceRegistration, logger *slog.Logger) (stop func()) {
	return untilStopped(ctx, func(ctx context.Context) {
		if err := r.KeepServiceRegistered(ctx, reg, DefaultKeepEvery, logger); err != nil {
			logger.Warn("proxy registration", "err", err)
		}
	})
}

// KeepInstanceUntilStopped keeps an app instance registered (with an HTTP
// check on /readyz; see KeepRegistered) until stop is called, which
// deregisters it.
func (r *Registry) KeepInstanceUntilStopped(ctx context.Context, in registry.Instance, logger *slog.Logger) (stop func()) {
	stop = untilStopped(ctx, func(ctx context.Context) {
		if err := r.KeepRegistered(ctx, in, DefaultKeepEvery); err != nil {
			logger.Warn("consul registration", "instance", in.ID, "err", err)
		}
	})
	logger.Info("registered in Consul", "instance", in.ID, "addr", in.Addr)
	return stop
}

// untilStopped runs keep in the background until stop is called, then
// waits for it to return.
func untilStopped(ctx context.Context, keep func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		keep(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
