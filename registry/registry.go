// Package registry is the source of truth for tenants and their live app
// instances. It defines the data model and the Registry interface; backends
// live in sub-packages (embedded: SQLite under the data directory; consul:
// HashiCorp Consul KV and catalog). The proxy and the supervisor are loops
// over Watch; operators write tenants with `campus tenant`.
package registry

import (
	"context"
	"slices"
	"time"
)

// State is a tenant's lifecycle state.
type State string

const (
	// StateActive tenants are served: the supervisor runs their apps and
	// the proxy routes their hosts.
	StateActive State = "active"
	// StateSuspended tenants keep their data and hosts, but the proxy
	// answers their hosts with a maintenance page and no app runs.
	StateSuspended State = "suspended"
	// StateCreating tenants are being created by `campus tenant create`:
	// name, ID and hosts are claimed, the database is being migrated. They
	// are not routed (their hosts answer 404 like unknown hosts) and no
	// app runs. A create that was interrupted leaves one; `campus tenant
	// purge` removes it.
	StateCreating State = "creating"
	// StateDeleted tenants were deleted with their data kept for a
	// retention period (DeletedAt, PurgeAfter). They are not routed (404
	// like unknown hosts) and no app runs, but they keep their ID, hosts
	// and name until purged, so that RestoreTenant always brings back the
	// same school and nobody else can take over its hosts or name.
	StateDeleted State = "deleted"
)

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	return s == StateActive || s == StateSuspended || s == StateCreating || s == StateDeleted
}

// Routed reports whether the proxy routes the hosts of a tenant in state s
// (to its app, or to the maintenance page). Hosts of tenants in other
// states answer like unknown hosts.
func (s State) Routed() bool { return s == StateActive || s == StateSuspended }

// Tenant is one school. Name is immutable and doubles as the default
// database name. ID is minted by the backend at creation, never changed
// and never re-used: a tenant deleted and created again under the same
// name is another tenant with another ID (tenant databases are stamped with
// it; see store.MigrateTenant). Hosts are normalised (see NormalizeHost),
// unique across all tenants, and include PrimaryHost. DeletedAt and
// PurgeAfter are set exactly when State is StateDeleted.
type Tenant struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Hosts       []string  `json:"hosts"`
	PrimaryHost string    `json:"primary_host"`
	Database    string    `json:"database"`
	State       State     `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	DeletedAt   time.Time `json:"deleted_at,omitzero"`
	PurgeAfter  time.Time `json:"purge_after,omitzero"`

	// IdleTimeout (scale to zero, issue 12) overrides the supervisor's
	// idle timeout for this tenant: "" uses the supervisor's default, "0s"
	// never stops it, otherwise a duration of at least a second as
	// time.Duration.String writes it. See ParseIdleTimeout.
	IdleTimeout string `json:"idle_timeout,omitempty"`

	// Memory (memory budget, issue 20) overrides the supervisor's
	// per-app memory limit for this tenant: "" uses the supervisor's
	// default, otherwise a size as ParseMemory writes it ("768MiB",
	// "2GiB").
	Memory string `json:"memory,omitempty"`
}

// Equal compares every field; times with time.Time.Equal.
func (t Tenant) Equal(u Tenant) bool {
	return t.ID == u.ID && t.Name == u.Name && t.DisplayName == u.DisplayName && slices.Equal(t.Hosts, u.Hosts) &&
		t.PrimaryHost == u.PrimaryHost && t.Database == u.Database && t.State == u.State &&
		t.CreatedAt.Equal(u.CreatedAt) && t.DeletedAt.Equal(u.DeletedAt) && t.PurgeAfter.Equal(u.PurgeAfter) &&
		t.IdleTimeout == u.IdleTimeout && t.Memory == u.Memory
}

// HasHost reports whether host (already normalised) is one of t's hosts.
func (t Tenant) HasHost(host string) bool {
	for _, h := range t.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// Instance is one running `campus app` process serving one tenant.
type Instance struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Addr    string `json:"addr"` // host:port the proxy dials
	Healthy bool   `json:"healthy"`
	// MemoryKills is how many times the supervisor that runs this
	// instance has seen its tenant's app killed by its memory limit
	// (since that supervisor started; memory budget, issue 20).
	MemoryKills int `json:"memory_kills,omitempty"`
}

// Snapshot is every tenant and instance at one version. Tenants are sorted
// by name, instances by tenant then ID. Versions only grow; a Snapshot is
// never modified after it is returned, so callers may share it.
type Snapshot struct {
	Version   uint64     `json:"version"`
	Tenants   []Tenant   `json:"tenants"`
	Instances []Instance `json:"instances"`
}

// Registry is implemented by every backend. All methods are safe for
// concurrent use, and — for the embedded backend — by several processes
// sharing one data directory.
type Registry interface {
	// CreateTenant stores a new tenant. The tenant must already be
	// normalised and valid (see NewTenant); ID (a new one from NewID) and
	// CreatedAt are set by the backend when zero. A name is taken as long
	// as its record exists, deleted or not. Errors: ErrInvalid, ErrExists,
	// *HostTakenError.
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// Tenant returns one tenant, or an error wrapping ErrNotFound.
	Tenant(ctx context.Context, name string) (Tenant, error)
	// Tenants returns every tenant, sorted by name.
	Tenants(ctx context.Context) ([]Tenant, error)
	// SetState changes a tenant's state to active or suspended (from
	// active, suspended or creating; see CheckSetState) and returns the
	// updated tenant. A deleted tenant is not changed: ErrWrongState.
	SetState(ctx context.Context, name string, state State) (Tenant, error)
	// MarkDeleted soft-deletes an active or suspended tenant: state
	// deleted, DeletedAt now, PurgeAfter as given (now if earlier). ID, name and hosts stay
	// claimed. Errors: ErrNotFound, ErrWrongState, ErrInvalid.
	MarkDeleted(ctx context.Context, name string, purgeAfter time.Time) (Tenant, error)
	// RestoreTenant makes a deleted tenant active again, with the same ID
	// and hosts, and clears DeletedAt and PurgeAfter. Errors: ErrNotFound,
	// ErrWrongState.
	RestoreTenant(ctx context.Context, name string) (Tenant, error)
	// DeleteTenant removes a tenant's record, whatever its state, and
	// releases its hosts. Instances are not removed: whoever runs them
	// deregisters them.
	DeleteTenant(ctx context.Context, name string) error
	// PurgeTenant is DeleteTenant on the condition that the tenant's ID
	// is id: a tenant re-created under the same name meanwhile is left
	// alone (an error wrapping ErrNotFound).
	PurgeTenant(ctx context.Context, name, id string) error

	// --- Custom domains (issue 14: `campus tenant host add/remove`) ---

	// AddHost gives an active or suspended tenant one more host name
	// (normalised by the backend; see CheckAddHost), claimed as
	// atomically as CreateTenant claims hosts: a host owned by another
	// tenant, even a deleted one, is *HostTakenError. Adding a host the
	// tenant already has changes nothing. Errors: ErrNotFound,
	// ErrWrongState, ErrInvalid, *HostTakenError.
	AddHost(ctx context.Context, tenant, host string) (Tenant, error)
	// RemoveHost releases one of a tenant's hosts (not its primary host;
	// see CheckRemoveHost); the proxy stops routing it (404) and serving
	// its certificate. Errors: ErrNotFound (tenant or host), ErrInvalid,
	// ErrWrongState.
	RemoveHost(ctx context.Context, tenant, host string) (Tenant, error)

	// --- end of custom domains ---

	// RegisterInstance adds or replaces (by ID) an instance.
	RegisterInstance(ctx context.Context, in Instance) error
	// DeregisterInstance removes an instance; removing an unknown ID is
	// not an error.
	DeregisterInstance(ctx context.Context, id string) error

	// Snapshot returns the current state.
	Snapshot(ctx context.Context) (Snapshot, error)
	// Watch blocks until the registry's version is greater than after, then
	// returns the new snapshot. It returns ctx.Err() when ctx ends first.
	// Watch(ctx, 0) returns immediately.
	Watch(ctx context.Context, after uint64) (Snapshot, error)

	// --- Scale to zero (issue 12); see scale.go ---

	// SetIdleTimeout sets a tenant's IdleTimeout override (normalised
	// with ParseIdleTimeout; "" clears it) and returns the updated
	// tenant. Errors: ErrNotFound, ErrInvalid.
	SetIdleTimeout(ctx context.Context, name, idle string) (Tenant, error)
	// RequestWake records that a request is waiting for tenant, for
	// whoever starts its instances (see WatchWakes). It is a claim, not
	// an order: the receiver starts only a tenant the registry says is
	// active. It does not change Snapshot's version.
	RequestWake(ctx context.Context, tenant string) error
	// WatchWakes blocks until a wake newer than the cursor after is
	// recorded and returns those wakes (one per tenant, latest) and the
	// new cursor. WatchWakes(ctx, 0) returns at once with no wakes and the
	// current cursor, so that a new watcher does not replay old wakes. It
	// returns ctx.Err() when ctx ends first.
	WatchWakes(ctx context.Context, after uint64) ([]Wake, uint64, error)

	// SetMemory sets a tenant's Memory override (normalised with
	// ParseMemory; "" clears it) and returns the updated tenant (memory
	// budget, issue 20; see budget.go). Errors: ErrNotFound, ErrInvalid.
	SetMemory(ctx context.Context, name, mem string) (Tenant, error)

	Close() error
}
