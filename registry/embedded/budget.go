package embedded

import (
	"context"
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// SetMemory implements registry.Registry: the memory-limit override is a
// column of tenants (memory budget, issue 20).
func (r *Registry) SetMemory(ctx context.Context, name, mem string) (registry.Tenant, error) {
	t, err := r.update(ctx, name, func(t registry.Tenant) (registry.Tenant, error) { return registry.CheckSetMemory(t, mem) })
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("set memory limit of tenant %q: %w", name, err)
	}
	return t, nil
}
