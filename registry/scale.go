package registry

import (
	"fmt"
	"time"
)

// Scale to zero (issue 12): a tenant's idle-timeout override and the wake
// signal a proxy sends to whoever starts instances.

// MinIdleTimeout is the shortest idle timeout other than "never".
const MinIdleTimeout = time.Second

// ParseIdleTimeout normalises an idle-timeout setting: "" (or "default")
// means "use the supervisor's default" and stays ""; "0", "0s" or "never"
// mean never stop, "0s"; anything else must be a Go duration of at least
// MinIdleTimeout, written back as time.Duration.String does ("15m0s").
func ParseIdleTimeout(s string) (string, error) {
	switch s {
	case "", "default":
		return "", nil
	case "0", "never":
		return "0s", nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return "", invalid("idle_timeout", "%q is not a duration (like 15m), 0 (never) or empty (the default)", s)
	}
	if d != 0 && d < MinIdleTimeout {
		return "", invalid("idle_timeout", "%q: must be 0 (never) or at least %s", s, MinIdleTimeout)
	}
	return d.String(), nil
}

// IdleAfter is how long t may go without a request before it is stopped:
// its own IdleTimeout, or def when it has none. 0 means never.
func (t Tenant) IdleAfter(def time.Duration) time.Duration {
	if t.IdleTimeout == "" {
		return max(def, 0)
	}
	d, err := time.ParseDuration(t.IdleTimeout)
	if err != nil { // Validate refuses it; never stop what cannot be read
		return 0
	}
	return d
}

// CheckSetIdleTimeout returns t with its idle timeout set to idle
// (normalised by ParseIdleTimeout).
func CheckSetIdleTimeout(t Tenant, idle string) (Tenant, error) {
	n, err := ParseIdleTimeout(idle)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", t.Name, err)
	}
	t.IdleTimeout = n
	return t, nil
}

// Wake is one tenant's latest wake request, as WatchWakes returns it. Seq
// orders wakes within one backend; it means nothing across backends.
type Wake struct {
	Tenant string    `json:"tenant"`
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at,omitzero"` // when it was requested, by the requester's clock
}
