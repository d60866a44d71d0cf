// Package nomadwake is the seam for scale to zero on Nomad (issue 12): a
// proxy.Waker that scales a tenant's Nomad job group from 0 to N when a
// request arrives for it, instead of a supervisor starting a process.
//
// Each tenant's apps are the Nomad job campus-app-<tenant>, task group
// "app" (deploy/nomad/campus-app.nomad.hcl). Waking tenant T means: check
// in the registry that T is active (the wake is a claim from a proxy;
// only the registry's record is trusted), then set the count of group
// "app" of job campus-app-T to Count if it is lower. Nomad places the
// allocation, registers the service in Consul with the tenant's token, and
// the proxies route to it once its /readyz check passes; held requests are
// answered then. The name of the job comes from the registry's tenant name
// alone, so a wake for A can only ever scale A's job.
//
// Waker is the decision, over a small Scaler interface; API is the Scaler
// over github.com/hashicorp/nomad/api (MPL-2.0): Jobs().ScaleStatus and
// Jobs().Scale, with a Nomad ACL token whose policy grants only
// namespace "campus-apps" { capabilities = ["read-job", "scale-job"] }.
// Nomad's ACLs cannot limit scale-job to one job, so that token can scale
// any app job of the namespace: it belongs to the proxies, and the Waker
// only ever names the job of a tenant the registry says is active. Not
// done: wiring into cmd/ (a `campus proxy` flag), and a test on a real
// Nomad (Nomad >= 1.7 is not open source; API is checked against the
// documented HTTP endpoints on a recording server). Scaling back to 0 is the other half: a loop beside the proxies
// (who see the traffic: proxy.(*Proxy).Activity) scales an idle tenant's
// group to 0 after its idle timeout (registry.Tenant.IdleAfter). See
// docs/ARCHITECTURE.md, "Scale to zero".
package nomadwake

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/campus-saas/campus/registry"
)

// Group is the task group of every tenant's job.
const Group = "app"

// JobID is the Nomad job of tenant's apps.
func JobID(tenant string) string { return "campus-app-" + tenant }

// Scaler sets a job group's count; Count reads it.
type Scaler interface {
	Count(ctx context.Context, job, group string) (int, error)
	Scale(ctx context.Context, job, group string, count int, reason string) error
}

// Tenants is what the Waker reads of the registry.
type Tenants interface {
	Tenant(ctx context.Context, name string) (registry.Tenant, error)
}

// Waker scales a woken tenant's job group up to Count (default 1). It
// implements proxy.Waker.
type Waker struct {
	Registry Tenants
	Scaler   Scaler
	Count    int
	Logger   *slog.Logger
}

// Wake implements proxy.Waker.
func (w Waker) Wake(ctx context.Context, tenant string) {
	if err := w.wake(ctx, tenant); err != nil {
		log := w.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("nomad wake failed", "tenant", tenant, "err", err)
	}
}

func (w Waker) wake(ctx context.Context, tenant string) error {
	t, err := w.Registry.Tenant(ctx, tenant)
	if err != nil {
		return fmt.Errorf("look up tenant: %w", err)
	}
	if t.State != registry.StateActive || t.Name != tenant {
		return fmt.Errorf("tenant %s is %s: not woken", tenant, t.State)
	}
	want := max(w.Count, 1)
	job := JobID(t.Name)
	have, err := w.Scaler.Count(ctx, job, Group)
	if err != nil {
		return fmt.Errorf("read count of %s/%s: %w", job, Group, err)
	}
	if have >= want {
		return nil
	}
	if err := w.Scaler.Scale(ctx, job, Group, want, "campus: request for idle tenant "+t.Name); err != nil {
		return fmt.Errorf("scale %s/%s to %d: %w", job, Group, want, err)
	}
	return nil
}
