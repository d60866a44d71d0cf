package consul

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
// in.Healthy is ignored: before each registration KeepRegistered probes
// the instance's /readyz itself, as the agent's check would, and registers
// the check passing only if that probe answered 2xx (routed at once), else
// critical (routed once the agent's check passes).
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
// (the proxies register themselves as campus-proxy with it). A check with
// an HTTP URL is probed before each registration and starts passing only
// if the probe answered 2xx.
func (r *Registry) KeepServiceRegistered(ctx context.Context, reg *api.AgentServiceRegistration, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		every = DefaultKeepEvery
	}
	bo := backoff{min: r.cfg.RetryMin, max: min(r.cfg.RetryMax, every)}
	registered := false
	for ctx.Err() == nil {
		wait := every
		if !registered {
			if err := r.client.Agent().ServiceRegisterOpts(r.probed(ctx, reg), api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
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

// probed returns reg with its check's initial status set from one probe
// of the check's HTTP URL, made now by this process: passing on a 2xx
// answer within CheckTimeout, else critical (Consul's default). reg itself
// is not modified.
func (r *Registry) probed(ctx context.Context, reg *api.AgentServiceRegistration) *api.AgentServiceRegistration {
	if reg.Check == nil || reg.Check.HTTP == "" {
		return reg
	}
	out, check := *reg, *reg.Check
	check.Status = api.HealthCritical
	if probeHTTP(ctx, check.HTTP, r.cfg.CheckTimeout) {
		check.Status = api.HealthPassing
	}
	out.Check = &check
	return &out
}

// probeClient makes the registration probes: no proxy from the
// environment, no redirects followed (like a Consul check, 2xx passes).
var probeClient = &http.Client{
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probeHTTP reports whether a GET of url answers 2xx within timeout.
func probeHTTP(ctx context.Context, url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
