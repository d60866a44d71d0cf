package registry

import (
	"errors"
	"fmt"
)

// Errors callers can tell apart with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrInvalid   = errors.New("invalid")
	ErrHostTaken = errors.New("host already taken")
	// ErrConflict means a concurrent writer changed the same data; the
	// caller may read again and retry.
	ErrConflict = errors.New("conflict")
	// ErrWrongState means the change is not allowed in the tenant's
	// current state (restoring a tenant that is not deleted, resuming a
	// deleted one, …).
	ErrWrongState = errors.New("not allowed in the tenant's state")
)

// HostTakenError says which tenant already owns a host, or (Near set) a
// host that this one is under or above (see CheckHostClaim).
type HostTakenError struct {
	Host  string
	Owner string
	Near  string // Owner's host that Host nests with; empty: Host itself
}

func (e *HostTakenError) Error() string {
	if e.Near != "" {
		return fmt.Sprintf("host %q is under or above %q, which belongs to tenant %q", e.Host, e.Near, e.Owner)
	}
	return fmt.Sprintf("host %q already belongs to tenant %q", e.Host, e.Owner)
}

// Is makes errors.Is(err, ErrHostTaken) true.
func (e *HostTakenError) Is(target error) bool { return target == ErrHostTaken }

// InvalidError names the field that failed validation.
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
