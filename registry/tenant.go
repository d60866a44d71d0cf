package registry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// reserved names would collide with MongoDB's own databases.
	reserved = map[string]bool{"admin": true, "local": true, "config": true}
)

// NewID returns a new tenant ID: 128 random bits as 32 lowercase hex
// digits. Backends call it in CreateTenant; IDs are never derived from
// names, so a name used again gets another ID.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics when it cannot)
	return hex.EncodeToString(b[:])
}

// ValidateID checks the form NewID returns.
func ValidateID(id string) error {
	if len(id) != 32 {
		return invalid("id", "%q must be 32 lowercase hex digits", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return invalid("id", "%q must be 32 lowercase hex digits", id)
		}
	}
	return nil
}

// ValidateName checks that name is a lowercase DNS label usable as a
// database name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("name", "%q must be a lowercase DNS label: 1-63 letters, digits or '-', not starting or ending with '-'", name)
	}
	if reserved[name] {
		return invalid("name", "%q is reserved", name)
	}
	return nil
}

// NewTenant builds a valid active tenant from operator input, with a new
// ID: hosts are normalised and de-duplicated, the first becomes the primary
// host, the display name defaults to the capitalised name and the database
// to the name.
func NewTenant(name string, hosts []string, displayName string) (Tenant, error) {
	t := Tenant{
		ID:          NewID(),
		Name:        strings.TrimSpace(name),
		DisplayName: strings.TrimSpace(displayName),
		Database:    strings.TrimSpace(name),
		State:       StateActive,
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		n, err := NormalizeHost(strings.TrimSpace(h))
		if err != nil {
			return Tenant{}, invalid("host", "%q: %v", h, err)
		}
		if !seen[n] {
			seen[n] = true
			t.Hosts = append(t.Hosts, n)
		}
	}
	if len(t.Hosts) > 0 {
		t.PrimaryHost = t.Hosts[0]
	}
	if t.DisplayName == "" && t.Name != "" {
		t.DisplayName = strings.ToUpper(t.Name[:1]) + t.Name[1:]
	}
	return t, t.Validate()
}

// Validate checks a tenant as stored: every backend calls it before a
// write (after setting the ID of a new tenant).
func (t Tenant) Validate() error {
	if err := ValidateName(t.Name); err != nil {
		return err
	}
	if err := ValidateID(t.ID); err != nil {
		return err
	}
	if t.DisplayName == "" || len(t.DisplayName) > 200 {
		return invalid("display_name", "must be 1-200 characters")
	}
	if len(t.Hosts) == 0 {
		return invalid("hosts", "a tenant needs at least one host name")
	}
	seen := map[string]bool{}
	for _, h := range t.Hosts {
		n, err := NormalizeHost(h)
		if err != nil || n != h {
			return invalid("hosts", "%q is not a normalised host name", h)
		}
		if net.ParseIP(h) != nil || numericTLD(h) {
			return invalid("hosts", "%q is an IP address; tenants are reached by name", h)
		}
		if seen[h] {
			return invalid("hosts", "%q is listed twice", h)
		}
		seen[h] = true
	}
	if !t.HasHost(t.PrimaryHost) {
		return invalid("primary_host", "%q is not one of the tenant's hosts", t.PrimaryHost)
	}
	if err := ValidateName(t.Database); err != nil {
		return invalid("database", "%q: must be a lowercase DNS label", t.Database)
	}
	if !t.State.Valid() {
		return invalid("state", "%q is not active, suspended, creating or deleted", t.State)
	}
	if t.State == StateDeleted {
		if t.DeletedAt.IsZero() || t.PurgeAfter.IsZero() {
			return invalid("state", "a deleted tenant needs deleted_at and purge_after")
		}
		if t.PurgeAfter.Before(t.DeletedAt) {
			return invalid("purge_after", "%s is before deleted_at %s", t.PurgeAfter.Format(time.RFC3339), t.DeletedAt.Format(time.RFC3339))
		}
	} else if !t.DeletedAt.IsZero() || !t.PurgeAfter.IsZero() {
		return invalid("state", "only a deleted tenant has deleted_at and purge_after")
	}
	if n, err := ParseIdleTimeout(t.IdleTimeout); err != nil {
		return err
	} else if n != t.IdleTimeout {
		return invalid("idle_timeout", "%q is not normalised (%q)", t.IdleTimeout, n)
	}
	if n, err := ParseMemory(t.Memory); err != nil {
		return err
	} else if n != t.Memory {
		return invalid("memory", "%q is not normalised (%q)", t.Memory, n)
	}
	return nil
}

// The state changes every backend makes, in one place. Each takes the
// tenant as stored and returns it changed, or an error; backends store
// the result (after Validate) only if it differs.

// CheckSetState returns t in state to, by SetState's rules: to is active
// or suspended; a deleted tenant must be restored first.
func CheckSetState(t Tenant, to State) (Tenant, error) {
	if to != StateActive && to != StateSuspended {
		return Tenant{}, invalid("state", "%q: SetState sets active or suspended", to)
	}
	if t.State == StateDeleted {
		return Tenant{}, fmt.Errorf("tenant %s is deleted (restore it first): %w", t.Name, ErrWrongState)
	}
	t.State = to
	return t, nil
}

// CheckMarkDeleted returns t soft-deleted at now, to be purged after
// purgeAfter (now, when purgeAfter is earlier).
func CheckMarkDeleted(t Tenant, now, purgeAfter time.Time) (Tenant, error) {
	if t.State != StateActive && t.State != StateSuspended {
		return Tenant{}, fmt.Errorf("tenant %s is %s, not active or suspended: %w", t.Name, t.State, ErrWrongState)
	}
	if purgeAfter.Before(now) {
		purgeAfter = now // retention over at once: purge may remove it now
	}
	t.State, t.DeletedAt, t.PurgeAfter = StateDeleted, now, purgeAfter
	return t, nil
}

// CheckRestore returns the deleted tenant t active again.
func CheckRestore(t Tenant) (Tenant, error) {
	if t.State != StateDeleted {
		return Tenant{}, fmt.Errorf("tenant %s is %s, not deleted: %w", t.Name, t.State, ErrWrongState)
	}
	t.State, t.DeletedAt, t.PurgeAfter = StateActive, time.Time{}, time.Time{}
	return t, nil
}

// CheckUpdate reports whether after may replace before: only the state,
// its timestamps, the display name and the idle timeout may change.
func CheckUpdate(before, after Tenant) error {
	if after.ID != before.ID || after.Name != before.Name || after.Database != before.Database ||
		after.PrimaryHost != before.PrimaryHost || !slices.Equal(after.Hosts, before.Hosts) ||
		!after.CreatedAt.Equal(before.CreatedAt) {
		return invalid("tenant", "only the state, display name and idle timeout of tenant %s may change", before.Name)
	}
	return after.Validate()
}

// numericTLD reports whether the last label of h is all digits, as in
// "10.0.0.1" or "999.1.1.1": not a host name (RFC 3696 §2) and too close
// to an IP address to route by.
func numericTLD(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}
