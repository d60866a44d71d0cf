package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

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

// checkRegistration refuses, before anything starts, a proxy that would
// register a wildcard admin address in Consul.
func (o *proxyOptions) checkRegistration(backend string) error {
	if backend == "consul" && o.registerSelf && o.adminAdvertise == "" && wildcardHost(o.adminListen) {
		return errWildcardAdmin(o.adminListen)
	}
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
	return registerProxy(ctx, po.consulReg.Client(), reg, logger), nil
}

// registerProxy registers the proxy with the local Consul agent and keeps
// it registered (an agent restarted without its data forgets services)
// until the returned stop function is called, which deregisters it. stop
// waits for the deregistration, at most about 5 s.
func registerProxy(ctx context.Context, client *api.Client, reg *api.AgentServiceRegistration, logger *slog.Logger) func() {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	log := logger.With("service", reg.Name, "id", reg.ID)
	go func() {
		defer close(done)
		keepProxyRegistered(ctx, client, reg, proxyKeepEvery, log)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

func keepProxyRegistered(ctx context.Context, client *api.Client, reg *api.AgentServiceRegistration, every time.Duration, log *slog.Logger) {
	registered := false
	retry := consul.DefaultRetryMin
	for ctx.Err() == nil {
		wait := every
		if !registered {
			if err := client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
				if ctx.Err() != nil {
					break
				}
				wait, retry = retry, min(2*retry, every)
				log.Warn("registering the proxy with consul failed; retrying", "err", err, "retry_in", wait)
			} else {
				registered, retry = true, consul.DefaultRetryMin
				log.Info("proxy registered in Consul", "addr", net.JoinHostPort(reg.Address, strconv.Itoa(reg.Port)))
			}
		} else {
			_, _, err := client.Agent().Service(reg.ID, (&api.QueryOptions{}).WithContext(ctx))
			switch {
			case err == nil, ctx.Err() != nil:
			case unknownService(err):
				log.Warn("the consul agent forgot the proxy; registering it again")
				registered = false
				continue
			default:
				log.Warn("asking the consul agent about the proxy failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Agent().ServiceDeregisterOpts(reg.ID, (&api.QueryOptions{}).WithContext(dctx)); err != nil && !unknownService(err) {
		log.Warn("deregistering the proxy from consul failed", "err", err)
		return
	}
	log.Info("proxy deregistered from Consul")
}

func unknownService(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "Unknown service")
}
