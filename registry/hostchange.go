package registry

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// CheckAddHost returns t with host (normalised) added after its other
// hosts, by AddHost's rules: a host name, not an IP address; the tenant is
// active or suspended. changed is false when t already has the host.
// Backends then claim the host as atomically as CreateTenant does.
func CheckAddHost(t Tenant, host string) (after Tenant, h string, changed bool, err error) {
	h, err = NormalizeHost(strings.TrimSpace(host))
	if err != nil {
		return Tenant{}, "", false, invalid("host", "%.100q: %v", host, err)
	}
	if net.ParseIP(h) != nil || numericTLD(h) {
		return Tenant{}, "", false, invalid("host", "%q is an IP address; tenants are reached by name", h)
	}
	if t.State != StateActive && t.State != StateSuspended {
		return Tenant{}, "", false, fmt.Errorf("tenant %s is %s: hosts are added to active or suspended tenants: %w", t.Name, t.State, ErrWrongState)
	}
	if t.HasHost(h) {
		return t, h, false, nil
	}
	t.Hosts = append(slices.Clip(t.Hosts), h)
	return t, h, true, t.Validate()
}

// CheckRemoveHost returns t without host, by RemoveHost's rules: the host
// is one of t's (else ErrNotFound) and not its primary host (the app's
// links use it; ErrInvalid).
func CheckRemoveHost(t Tenant, host string) (after Tenant, h string, err error) {
	h, err = NormalizeHost(strings.TrimSpace(host))
	if err != nil {
		return Tenant{}, "", invalid("host", "%.100q: %v", host, err)
	}
	if !t.HasHost(h) {
		return Tenant{}, "", fmt.Errorf("host %q of tenant %s: %w", h, t.Name, ErrNotFound)
	}
	if h == t.PrimaryHost {
		return Tenant{}, "", invalid("host", "%q is the primary host of tenant %s; it cannot be removed", h, t.Name)
	}
	if t.State == StateDeleted || t.State == StateCreating {
		return Tenant{}, "", fmt.Errorf("tenant %s is %s: %w", t.Name, t.State, ErrWrongState)
	}
	t.Hosts = slices.DeleteFunc(slices.Clone(t.Hosts), func(x string) bool { return x == h })
	return t, h, t.Validate()
}
