package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// Memory budget (issue 20): a tenant's memory-limit override. The
// supervisor that runs the tenant's app enforces it (deploy/supervisor);
// the record only says how much.

const (
	mib = 1 << 20
	gib = 1 << 30
	// MinMemory is the smallest memory limit a tenant may have: a Go
	// runtime, the app and a small school fit in it.
	MinMemory = 64 * mib
	// MaxMemory is the largest (a typo guard, not a policy).
	MaxMemory = 1024 * gib
)

// ParseMemory normalises a memory-limit setting: "" (or "default") means
// "use the supervisor's default" and stays ""; anything else is a whole
// number of mebibytes or gibibytes, with the unit M, MB, MiB, Mi, G, GB,
// GiB or Gi (all binary, as Docker's "512m" and Nomad's memory = 512 are),
// between MinMemory and MaxMemory, written back as "512MiB" or "2GiB".
func ParseMemory(s string) (string, error) {
	if s == "" || s == "default" {
		return "", nil
	}
	n, err := MemoryBytes(s)
	if err != nil {
		return "", err
	}
	if n%gib == 0 {
		return strconv.FormatInt(n/gib, 10) + "GiB", nil
	}
	return strconv.FormatInt(n/mib, 10) + "MiB", nil
}

// MemoryBytes parses a memory size as ParseMemory accepts it (not
// "default") into bytes.
func MemoryBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	unit := int64(0)
	switch strings.ToLower(s[len(num):]) {
	case "m", "mb", "mib", "mi":
		unit = mib
	case "g", "gb", "gib", "gi":
		unit = gib
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if unit == 0 || err != nil || v <= 0 {
		return 0, invalid("memory", "%q is not a size like 512MiB or 2GiB, or empty (the default)", s)
	}
	if v > MaxMemory/unit || v*unit < MinMemory {
		return 0, invalid("memory", "%q: must be between %dMiB and %dGiB", s, MinMemory/mib, MaxMemory/gib)
	}
	return v * unit, nil
}

// MemoryLimit is t's memory limit in bytes: its own Memory, or def when
// it has none.
func (t Tenant) MemoryLimit(def int64) int64 {
	if t.Memory == "" {
		return def
	}
	n, err := MemoryBytes(t.Memory)
	if err != nil { // Validate refuses it; fall back to the default
		return def
	}
	return n
}

// CheckSetMemory returns t with its memory limit set to mem (normalised
// by ParseMemory).
func CheckSetMemory(t Tenant, mem string) (Tenant, error) {
	n, err := ParseMemory(mem)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", t.Name, err)
	}
	t.Memory = n
	return t, nil
}
