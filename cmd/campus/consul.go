package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

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
