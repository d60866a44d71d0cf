package consul

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// DefaultKeepEvery is KeepRegistered's checking period when none is given.
const DefaultKeepEvery = 10 * time.Second

// KeepRegistered registers in with the local agent and keeps it
// registered until ctx ends, then deregisters it. Every period it asks the
// agent whether it still knows the instance (an agent restarted without
// its data forgets services) and registers it again if not. While Consul
// is unreachable it retries with backoff; the caller keeps serving.
//
// It blocks until ctx ends and returns the final deregistration's error,
// or at once an error wrapping registry.ErrInvalid for a bad instance.
// `campus app` runs it in a goroutine for self-registration.
func (r *Registry) KeepRegistered(ctx context.Context, in registry.Instance, every time.Duration) error {
	reg, err := r.registration(in)
	if err != nil {
		return fmt.Errorf("keep instance registered: %w", err)
	}
	return r.KeepServiceRegistered(ctx, reg, every, r.log.With("tenant", in.Tenant, "instance", in.ID))
}

// KeepServiceRegistered is KeepRegistered for any service registration
// (the proxies register themselves as campus-proxy with it).
func (r *Registry) KeepServiceRegistered(ctx context.Context, reg *api.AgentServiceRegistration, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		every = DefaultKeepEvery
	}
	bo := backoff{min: r.cfg.RetryMin, max: min(r.cfg.RetryMax, every)}
	registered := false
	for ctx.Err() == nil {
		wait := every
		if !registered {
			if err := r.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
				if ctx.Err() != nil {
					break
				}
				wait = bo.next()
				log.Warn("registering with consul failed; retrying", "service", reg.Name, "err", err, "retry_in", wait.Round(time.Millisecond))
			} else {
				registered = true
				bo.reset()
				log.Info("registered in consul", "service", reg.Name, "id", reg.ID)
			}
		} else {
			_, _, err := r.client.Agent().Service(reg.ID, qopts(ctx))
			switch {
			case err == nil:
			case ctx.Err() != nil:
			case isUnknownService(err):
				log.Warn("the consul agent forgot this service; registering it again", "service", reg.Name)
				registered = false
				continue
			default:
				log.Warn("asking the consul agent about this service failed", "service", reg.Name, "err", err)
			}
		}
		sleep(ctx, wait)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.client.Agent().ServiceDeregisterOpts(reg.ID, qopts(dctx)); err != nil && !isUnknownService(err) {
		return fmt.Errorf("keep %s registered: final deregistration: %w", reg.ID, err)
	}
	log.Info("deregistered from consul", "service", reg.Name, "id", reg.ID)
	return nil
}
