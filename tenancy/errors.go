package tenancy

import (
	"fmt"

	"github.com/campus-saas/campus/registry"
)

// UnknownTenantError is a name the registry does not hold.
type UnknownTenantError struct{ Name string }

func (e *UnknownTenantError) Error() string { return fmt.Sprintf("unknown tenant %q", e.Name) }

// NameTakenError is a create (or restore) of a name the registry holds:
// Existing is that tenant (deleted, being created, or live).
type NameTakenError struct {
	Name     string
	Existing registry.Tenant
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("cannot create tenant %q: a tenant with that name already exists (%s); nothing was created", e.Name, e.Existing.State)
}

// HostTakenError is a create (or restore) of a host another tenant holds:
// Owner is that tenant (only its Name when it could not be read); Err is
// the registry's *registry.HostTakenError when the claim itself was
// refused (nil when the check before it found the host taken).
type HostTakenError struct {
	Name, Host string
	Owner      registry.Tenant
	Err        error
}

func (e *HostTakenError) Unwrap() error { return e.Err }

func (e *HostTakenError) Error() string {
	return fmt.Sprintf("cannot create tenant %q: host %s already belongs to tenant %q; nothing was created", e.Name, e.Host, e.Owner.Name)
}

// DatabaseNotEmptyError is a new tenant's database that already holds
// data: Stamp is the tenant ID it is stamped for ("" when unstamped).
type DatabaseNotEmptyError struct {
	Name, Database, Stamp string
}

func (e *DatabaseNotEmptyError) Error() string {
	return fmt.Sprintf("cannot create tenant %q: database %q already holds data; nothing was created", e.Name, e.Database)
}

// WrongStateError is an operation on a tenant in a state that does not
// allow it (resume a deleted tenant, purge an active one …).
type WrongStateError struct {
	Op     string // "suspend", "resume", "delete", "purge", "restore"
	Tenant registry.Tenant
}

func (e *WrongStateError) Error() string {
	return fmt.Sprintf("cannot %s tenant %q: it is %s", e.Op, e.Tenant.Name, e.Tenant.State)
}

// UndoneError is a create or restore that failed after its claim: Failed
// says what failed, Cause why; UndoErr is nil when everything written was
// undone, else why the undo failed (the tenant then is left to purge).
type UndoneError struct {
	Failed  string
	Cause   error
	Tenant  registry.Tenant
	UndoErr error
}

func (e *UndoneError) Error() string {
	if e.UndoErr != nil {
		return fmt.Sprintf("%s: %v; undoing it failed too (%v)", e.Failed, e.Cause, e.UndoErr)
	}
	return fmt.Sprintf("%s: %v; nothing was kept", e.Failed, e.Cause)
}

func (e *UndoneError) Unwrap() error { return e.Cause }

// ForeignDatabaseError is a database stamped for another tenant ID than
// the one an operation was for: it is left alone.
type ForeignDatabaseError struct {
	Op     string
	Tenant registry.Tenant
	Stamp  string
}

func (e *ForeignDatabaseError) Error() string {
	return fmt.Sprintf("%s tenant %q: database %q is stamped for tenant ID %s, not for this tenant's ID %s; not touching another tenant's data",
		e.Op, e.Tenant.Name, e.Tenant.Database, e.Stamp, e.Tenant.ID)
}
