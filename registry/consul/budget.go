package consul

import (
	"context"
	"strconv"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry"
)

// Memory budget (issue 20): the memory-limit override is a field of the
// tenant's JSON document; an instance's memory kills are the service meta
// MetaMemoryKills (absent when 0).

// MetaMemoryKills is the service meta that carries
// registry.Instance.MemoryKills.
const MetaMemoryKills = "memory_kills"

// SetMemory implements registry.Registry.
func (r *Registry) SetMemory(ctx context.Context, name, mem string) (registry.Tenant, error) {
	return r.update(ctx, name, "set memory limit of", func(t registry.Tenant) (registry.Tenant, error) {
		return registry.CheckSetMemory(t, mem)
	})
}

// memoryKills reads MetaMemoryKills of a service (0 when absent or bad).
func memoryKills(s *api.AgentService) int {
	n, err := strconv.Atoi(s.Meta[MetaMemoryKills])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// keepMeta keeps of a service's meta only what the watch reads
// (MetaMemoryKills), so the catalog's other meta costs no memory.
func keepMeta(m map[string]string) map[string]string {
	if v, ok := m[MetaMemoryKills]; ok {
		return map[string]string{MetaMemoryKills: v}
	}
	return nil
}
