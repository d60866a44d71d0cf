package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// openConsul opens the Consul registry backend. The agent's address, token
// and TLS settings come from the standard CONSUL_* environment variables.
func openConsul(_ context.Context, o *registryOptions, logger *slog.Logger, reg prometheus.Registerer) (registry.Registry, error) {
	r, err := consul.New(consul.Config{Prefix: o.consulPrefix, CheckInterval: o.consulCheck, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("open Consul registry: %w", err)
	}
	return r, nil
}

// selfRegister keeps an app instance registered in Consul (with an HTTP
// check on /readyz) until the returned stop function is called, which
// deregisters it.
func selfRegister(ctx context.Context, reg registry.Registry, in registry.Instance, logger *slog.Logger) (func(), error) {
	cr, ok := reg.(*consul.Registry)
	if !ok {
		return nil, errors.New("self-registration needs the Consul registry")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cr.KeepRegistered(ctx, in, consul.DefaultKeepEvery); err != nil {
			logger.Warn("consul registration", "instance", in.ID, "err", err)
		}
	}()
	logger.Info("registered in Consul", "instance", in.ID, "addr", in.Addr)
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}
