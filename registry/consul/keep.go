package consul

import (
	"context"
	"fmt"
	"time"

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
	if _, err := r.registration(in); err != nil {
		return fmt.Errorf("keep instance registered: %w", err)
	}
	if every <= 0 {
		every = DefaultKeepEvery
	}
	log := r.log.With("tenant", in.Tenant, "instance", in.ID)
	bo := backoff{min: r.cfg.RetryMin, max: min(r.cfg.RetryMax, every)}
	registered := false
	for ctx.Err() == nil {
		wait := every
		if !registered {
			if err := r.RegisterInstance(ctx, in); err != nil {
				if ctx.Err() != nil {
					break
				}
				wait = bo.next()
				log.Warn("registering with consul failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
			} else {
				registered = true
				bo.reset()
			}
		} else {
			_, _, err := r.client.Agent().Service(in.ID, qopts(ctx))
			switch {
			case err == nil:
			case ctx.Err() != nil:
			case isUnknownService(err):
				log.Warn("the consul agent forgot this instance; registering it again")
				registered = false
				continue
			default:
				log.Warn("asking the consul agent about this instance failed", "err", err)
			}
		}
		sleep(ctx, wait)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.DeregisterInstance(dctx, in.ID); err != nil {
		return fmt.Errorf("keep instance registered: final deregistration: %w", err)
	}
	return nil
}
