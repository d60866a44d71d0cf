package registry

import "context"

// HostLookup is an optional capability of a backend (the Consul one has
// it; the embedded one wakes watchers within milliseconds and does not
// need it): read the owner of one host and that tenant's instances now,
// instead of waiting for Watch, whose whole-registry lists take longer to
// move the more tenants there are. The proxy asks it on a request for a
// host it has no route (or no healthy instance) for, rate-limited.
//
// What a lookup reads follows exactly the rules of Watch (the tenant of an
// instance from its service name only, healthy only when its own checks
// pass) and becomes part of every snapshot Watch returns from then on,
// until Watch's own view of that data is at least as new; so a route that
// a lookup found does not flap back to 404 when an older watch answer
// arrives, and a newer one replaces it.
type HostLookup interface {
	// LookupHost reads host (normalised; see NormalizeHost) from the
	// backend now. Result.Tenant is empty when no tenant routes host: no
	// owner, an owner whose record does not list host, or an owner that
	// is being created or deleted. A malformed host is an error wrapping
	// ErrInvalid.
	LookupHost(ctx context.Context, host string) (HostLookupResult, error)
}

// HostLookupResult is what LookupHost found.
type HostLookupResult struct {
	// Tenant routes the host (active or suspended); "" for none.
	Tenant string
	// Healthy is how many of its instances are healthy.
	Healthy int
	// Version: every snapshot from Watch at this version or later
	// includes what the lookup read (or something newer).
	Version uint64
}
