// Package registry is the source of truth for tenants and their live app
// instances. It defines the data model and the Registry interface; backends
// live in sub-packages (embedded: SQLite under the data directory; consul:
// HashiCorp Consul KV and catalog). The proxy and the supervisor are loops
// over Watch; operators write tenants with `campus tenant`.
package registry

import (
	"context"
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
)

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s == StateActive || s == StateSuspended }

// Tenant is one school. Name is immutable and doubles as the default
// database name. Hosts are normalised (see NormalizeHost), unique across all
// tenants, and include PrimaryHost.
type Tenant struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Hosts       []string  `json:"hosts"`
	PrimaryHost string    `json:"primary_host"`
	Database    string    `json:"database"`
	State       State     `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
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
	// normalised and valid (see NewTenant); CreatedAt is set by the
	// backend when zero. Errors: ErrInvalid, ErrExists, *HostTakenError.
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// Tenant returns one tenant, or an error wrapping ErrNotFound.
	Tenant(ctx context.Context, name string) (Tenant, error)
	// Tenants returns every tenant, sorted by name.
	Tenants(ctx context.Context) ([]Tenant, error)
	// SetState changes a tenant's state and returns the updated tenant.
	SetState(ctx context.Context, name string, state State) (Tenant, error)
	// DeleteTenant removes a tenant and releases its hosts. Instances are
	// not removed: whoever runs them deregisters them.
	DeleteTenant(ctx context.Context, name string) error

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

	Close() error
}
