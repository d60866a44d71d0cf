package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// LookupHost passes registry.HostLookup through to the backend, with the
// result's version shifted as Watch shifts it. A backend without lookups
// answers errors.ErrUnsupported (see Lookups).
func (r *Registry) LookupHost(ctx context.Context, host string) (registry.HostLookupResult, error) {
	hl, ok := r.Registry.(registry.HostLookup)
	if !ok {
		return registry.HostLookupResult{}, fmt.Errorf("look up host: %w", errors.ErrUnsupported)
	}
	res, err := hl.LookupHost(ctx, host)
	if err != nil {
		return res, err
	}
	r.mu.Lock()
	res.Version += r.base
	r.mu.Unlock()
	return res, nil
}

// Lookups reports whether the backend has host lookups.
func (r *Registry) Lookups() bool {
	_, ok := r.Registry.(registry.HostLookup)
	return ok
}
