package registry

import (
	"net"
	"regexp"
	"strings"
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// reserved names would collide with MongoDB's own databases.
	reserved = map[string]bool{"admin": true, "local": true, "config": true}
)

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

// NewTenant builds a valid active tenant from operator input: hosts are
// normalised and de-duplicated, the first becomes the primary host, the
// display name defaults to the capitalised name and the database to the
// name.
func NewTenant(name string, hosts []string, displayName string) (Tenant, error) {
	t := Tenant{
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
// write.
func (t Tenant) Validate() error {
	if err := ValidateName(t.Name); err != nil {
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
		return invalid("state", "%q is not active or suspended", t.State)
	}
	return nil
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
