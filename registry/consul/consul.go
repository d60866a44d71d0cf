// Package consul is the registry backend for HashiCorp Consul.
//
// Tenants are JSON documents in the KV store under <prefix>tenants/<name>;
// host ownership is a second key per host, <prefix>hosts/<host>, whose
// value is the owning tenant's name. A tenant and all its host keys are
// created in one /v1/txn whose operations are check-and-set with index 0
// ("only if absent"), so Consul itself guarantees that two operators
// racing for a host cannot both get it.
//
// App instances are Consul services named ServicePrefix+tenant (default
// "campus-app-<tenant>"), registered with the local agent, each with an HTTP
// check on http://<addr>/readyz: Consul, not the caller, decides health. The
// agent removes instances that stay critical for DeregisterCriticalAfter. The
// tenant of an instance is read from its service name only: with Consul ACLs
// (see acl.go), only the tenant's own token may register that name.
//
// Snapshot and Watch are served by a background watcher (started on first
// use) following two blocking queries whatever the number of nodes and
// tenants (the tenants' KV prefix and the datacenter's catalog of nodes,
// services and checks; see watch.go), merged into one snapshot whose
// version moves only when the merged content changes. While Consul is
// unreachable Watch keeps the last snapshot; when it is back, changes flow
// again.
//
// The Consul client is bounded and polite (package consulhttp): at most
// Config.MaxConns connections to the agent, and 429 or 503 answers retried
// after backoff with jitter.
package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul/consulhttp"
)

// Defaults for Config's zero fields.
const (
	DefaultPrefix                  = "campus/"
	DefaultServicePrefix           = "campus-app-"
	DefaultCheckInterval           = 5 * time.Second
	DefaultCheckTimeout            = 2 * time.Second
	DefaultDeregisterCriticalAfter = time.Minute
	DefaultWatchWait               = 5 * time.Minute
	DefaultStaleMargin             = 5 * time.Second
	DefaultRetryMin                = 250 * time.Millisecond
	DefaultRetryMax                = 15 * time.Second
	DefaultMaxQueryRate            = 50
	DefaultListPace                = 200 * time.Microsecond
	DefaultMaxListPace             = 250 * time.Millisecond
	DefaultMaxCatalogPace          = 5 * time.Second
)

// Every app service carries the tag ServiceTag and the meta MetaTenant, for
// people and for Prometheus's service discovery. Neither is trusted: the
// registry takes an instance's tenant from its service name alone.
const (
	ServiceTag = "campus-app"
	MetaTenant = "tenant"
)

// ErrPermissionDenied wraps a write that Consul's ACLs refused inside a
// transaction (outside one, the api.StatusError says 403).
var ErrPermissionDenied = errors.New("permission denied by Consul ACLs")

// maxTxnOps is Consul's limit of operations in one transaction.
const maxTxnOps = 128

// Config configures a Registry. The zero value works against the agent
// named by the standard CONSUL_* environment variables.
type Config struct {
	// Client, when set, is used as is. Otherwise one is built from API, or
	// from api.DefaultConfig() (which honours CONSUL_HTTP_ADDR,
	// CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL, CONSUL_CACERT, …) when API is nil,
	// by consulhttp.NewClient: at most MaxConns connections to the agent
	// (default consulhttp.DefaultMaxConns, 8; the watcher's two blocking
	// queries and WatchWakes' one hold one each), 429 and 503 retried with
	// backoff.
	Client   *api.Client
	API      *api.Config
	MaxConns int

	// Prefix of every KV key campus writes; default "campus/".
	Prefix string
	// ServicePrefix of app services: tenant T's instances are the service
	// ServicePrefix+T (default "campus-app-"), so that a Consul ACL rule on
	// that exact name decides who may register an instance of T.
	ServicePrefix string

	// CheckInterval, CheckTimeout and DeregisterCriticalAfter configure the
	// /readyz check of registered instances. Consul's agent runs checks at
	// least every second and reaps critical services after at least a
	// minute.
	CheckInterval           time.Duration
	CheckTimeout            time.Duration
	DeregisterCriticalAfter time.Duration

	// WatchWait is the wait of each blocking query (default 5m). Consul
	// may add up to WatchWait/16; a query without an answer after
	// WatchWait + WatchWait/16 + StaleMargin (default 5s) is abandoned and
	// retried on a new connection (a reconnect).
	WatchWait   time.Duration
	StaleMargin time.Duration
	// RetryMin and RetryMax bound the capped exponential backoff, with
	// jitter, between failed queries.
	RetryMin, RetryMax time.Duration
	// MaxQueryRate limits each watch loop to this many queries per second
	// (with a burst of as many), so that a churning Consul degrades into
	// polling instead of a busy loop, as Consul's documentation asks of
	// blocking clients. Default 50; negative means unlimited.
	MaxQueryRate float64
	// ListPace paces the re-reads of each whole list the watcher follows
	// by its size: after an answer of n entries (tenants; for the
	// catalog, services and checks), the next query waits n × ListPace
	// (default 200µs: 2 s at 10,000 tenants, 0.2 s at 1,000, 20 ms at
	// 100), at most MaxListPace (MaxCatalogPace for the catalog). Changes
	// that come meanwhile are read together; a new host's route does not
	// wait for it (LookupHost), other changes (suspend, delete, an
	// instance going critical) may wait that long more under churn.
	// Negative: no pacing.
	ListPace time.Duration
	// MaxListPace caps the tenants' wait (default 250ms), so that a suspend or a
	// delete reaches the proxies within about a second at any size, at
	// the price of re-reading a big list up to four times a second under
	// churn. Negative: no cap.
	MaxListPace time.Duration
	// MaxCatalogPace is MaxListPace for the catalog (default 5s; n × 200µs
	// is 4 s at 10,000 instances): its answer lists every instance and
	// check of the datacenter (6.5 MB at 10,000 instances, 0.1 to 0.4 s of
	// the agent's time to send, which slowed its writes measurably when
	// read every second), and what it alone brings is an instance leaving
	// or going critical, which Consul's checks take CheckInterval (5s) to
	// notice anyway; a new instance is looked up on its first request.
	// After a quiet spell a change is read at once. Negative: no cap.
	MaxCatalogPace time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimLeft(c.Prefix, "/")
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.ServicePrefix == "" {
		c.ServicePrefix = DefaultServicePrefix
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CheckInterval, DefaultCheckInterval)
	def(&c.CheckTimeout, DefaultCheckTimeout)
	def(&c.DeregisterCriticalAfter, DefaultDeregisterCriticalAfter)
	def(&c.WatchWait, DefaultWatchWait)
	def(&c.StaleMargin, DefaultStaleMargin)
	def(&c.RetryMin, DefaultRetryMin)
	def(&c.RetryMax, DefaultRetryMax)
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.ListPace == 0 {
		c.ListPace = DefaultListPace
	}
	capDef := func(d *time.Duration, v time.Duration) {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			*d = time.Duration(math.MaxInt64)
		}
	}
	capDef(&c.MaxListPace, DefaultMaxListPace)
	capDef(&c.MaxCatalogPace, DefaultMaxCatalogPace)
	if c.MaxQueryRate == 0 {
		c.MaxQueryRate = DefaultMaxQueryRate
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Registry is the Consul backend of registry.Registry.
type Registry struct {
	cfg       Config
	client    *api.Client
	closeIdle func() // of a client New built
	log       *slog.Logger
	metrics   *metrics

	tenantsPrefix string
	hostsPrefix   string

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
	state   mergeState
	changed chan struct{} // closed and replaced when the version moves
}

var (
	_ registry.Registry   = (*Registry)(nil)
	_ registry.HostLookup = (*Registry)(nil)
)

// New returns a Registry on the Consul agent described by cfg. It does not
// contact Consul; the watcher starts on the first Snapshot or Watch.
func New(cfg Config) (*Registry, error) {
	cfg = cfg.withDefaults()
	client, closeIdle := cfg.Client, func() {}
	if client == nil {
		c, err := consulhttp.NewClient(cfg.API, consulhttp.Options{
			MaxConns: cfg.MaxConns, RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax,
			Logger: cfg.Logger.With("registry", "consul"),
		})
		if err != nil {
			return nil, err
		}
		client, closeIdle = c.Client, c.CloseIdle
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("consul registry metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:           cfg,
		client:        client,
		closeIdle:     closeIdle,
		log:           cfg.Logger.With("registry", "consul"),
		metrics:       m,
		tenantsPrefix: cfg.Prefix + "tenants/",
		hostsPrefix:   cfg.Prefix + "hosts/",
		ctx:           ctx,
		cancel:        cancel,
		changed:       make(chan struct{}),
	}
	r.state.cache = map[string]cachedTenant{}
	r.state.src = map[string]*sourceState{}
	r.state.services = map[string][]*api.AgentService{}
	r.state.checks = map[string]api.HealthChecks{}
	r.state.nodeInst = map[string][]registry.Instance{}
	r.state.dirtyNodes = map[string]bool{}
	r.state.tenantPins = map[string]tenantPin{}
	r.state.instPins = map[svcKey]instPin{}
	return r, nil
}

// Client is the Consul API client the registry uses.
func (r *Registry) Client() *api.Client { return r.client }

// Close stops the watcher. It does not deregister anything.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cancel()
	close(r.changed) // wakes Watch callers, who see the registry is closed
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.wg.Wait()
	r.closeIdle()
	return nil
}

func (r *Registry) tenantKey(name string) string { return r.tenantsPrefix + name }
func (r *Registry) hostKey(host string) string   { return r.hostsPrefix + host }

func qopts(ctx context.Context) *api.QueryOptions { return (&api.QueryOptions{}).WithContext(ctx) }
func wopts(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }

func invalid(field, format string, args ...any) error {
	return &registry.InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// CreateTenant stores t and claims its hosts in one transaction.
func (r *Registry) CreateTenant(ctx context.Context, t registry.Tenant) (registry.Tenant, error) {
	if t.ID == "" {
		t.ID = registry.NewID()
	}
	if err := t.Validate(); err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %q: %w", t.Name, err)
	}
	if len(t.Hosts)+1 > maxTxnOps {
		return registry.Tenant{}, fmt.Errorf("create tenant %s: %w", t.Name,
			invalid("hosts", "a tenant may have at most %d hosts in Consul", maxTxnOps-1))
	}
	t.Hosts = slices.Clone(t.Hosts)
	if err := r.checkHostClaims(ctx, t.Name, t.Hosts...); err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %s: %w", t.Name, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now().UTC()
	}
	val, err := json.Marshal(t)
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("create tenant %s: encode: %w", t.Name, err)
	}
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.tenantKey(t.Name), Value: val, Index: 0}}}
	for _, h := range t.Hosts {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: r.hostKey(h), Value: []byte(t.Name), Index: 0}})
	}
	var whats []string
	for attempt := 0; attempt < 3; attempt++ {
		ok, resp, _, err := r.client.Txn().Txn(ops, qopts(ctx))
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("create tenant %s in consul: %w", t.Name, err)
		}
		if ok {
			r.log.Info("tenant created", "tenant", t.Name, "hosts", t.Hosts)
			return t, nil
		}
		failed := map[int]bool{}
		whats = whats[:0]
		for _, e := range resp.Errors {
			failed[e.OpIndex] = true
			whats = append(whats, e.What)
			if strings.Contains(e.What, "Permission denied") {
				return registry.Tenant{}, fmt.Errorf("create tenant %s: %s: %w", t.Name, e.What, ErrPermissionDenied)
			}
		}
		if failed[0] {
			return registry.Tenant{}, fmt.Errorf("create tenant %s: %w", t.Name, registry.ErrExists)
		}
		for i, h := range t.Hosts {
			if !failed[i+1] {
				continue
			}
			owner, found, err := r.hostOwner(ctx, h)
			if err != nil {
				return registry.Tenant{}, fmt.Errorf("create tenant %s: %w", t.Name, err)
			}
			if found {
				return registry.Tenant{}, fmt.Errorf("create tenant %s: %w", t.Name, &registry.HostTakenError{Host: h, Owner: owner})
			}
		}
		// The keys that were in the way are gone again (a concurrent
		// delete); try once more.
	}
	return registry.Tenant{}, fmt.Errorf("create tenant %s: consul rejected the transaction: %s: %w",
		t.Name, strings.Join(whats, "; "), registry.ErrConflict)
}

// hostOwner reads which tenant owns host.
func (r *Registry) hostOwner(ctx context.Context, host string) (string, bool, error) {
	p, _, err := r.client.KV().Get(r.hostKey(host), qopts(ctx))
	if err != nil {
		return "", false, fmt.Errorf("read owner of host %s from consul: %w", host, err)
	}
	if p == nil {
		return "", false, nil
	}
	return string(p.Value), true, nil
}

// Tenant reads one tenant. A tenant stored before tenant IDs existed gets
// its ID here, written back with check-and-set, so that whoever asks first
// (an app starting, an operator) sees the ID every later reader sees. When
// the write fails (a read-only token), the tenant comes back without an ID.
func (r *Registry) Tenant(ctx context.Context, name string) (registry.Tenant, error) {
	t, _, err := r.getTenant(ctx, name)
	if err == nil && t.ID == "" {
		withID, uerr := r.update(ctx, name, "assign an ID to", func(t registry.Tenant) (registry.Tenant, error) { return t, nil })
		if uerr != nil {
			// A reader whose token may not write KV still gets the tenant;
			// without an ID, no app serves it (see campus app).
			r.log.Warn("tenant has no ID and one could not be stored", "tenant", name, "err", uerr)
			return t, nil
		}
		return withID, nil
	}
	return t, err
}

// getTenant reads a tenant and its key's ModifyIndex.
func (r *Registry) getTenant(ctx context.Context, name string) (registry.Tenant, uint64, error) {
	if registry.ValidateName(name) != nil {
		return registry.Tenant{}, 0, fmt.Errorf("tenant %q: %w", name, registry.ErrNotFound)
	}
	p, _, err := r.client.KV().Get(r.tenantKey(name), qopts(ctx))
	if err != nil {
		return registry.Tenant{}, 0, fmt.Errorf("read tenant %s from consul: %w", name, err)
	}
	if p == nil {
		return registry.Tenant{}, 0, fmt.Errorf("tenant %s: %w", name, registry.ErrNotFound)
	}
	t, err := r.decodeTenant(p)
	if err != nil {
		return registry.Tenant{}, 0, err
	}
	return t, p.ModifyIndex, nil
}

func (r *Registry) decodeTenant(p *api.KVPair) (registry.Tenant, error) {
	name := strings.TrimPrefix(p.Key, r.tenantsPrefix)
	var t registry.Tenant
	if err := json.Unmarshal(p.Value, &t); err != nil {
		return registry.Tenant{}, fmt.Errorf("decode tenant key %s: %w", p.Key, err)
	}
	if t.Name != name {
		return registry.Tenant{}, fmt.Errorf("decode tenant key %s: it holds tenant %q", p.Key, t.Name)
	}
	return t, nil
}

// Tenants lists every tenant, sorted by name.
func (r *Registry) Tenants(ctx context.Context) ([]registry.Tenant, error) {
	pairs, _, err := r.client.KV().List(r.tenantsPrefix, qopts(ctx))
	if err != nil {
		return nil, fmt.Errorf("list tenants from consul: %w", err)
	}
	out := make([]registry.Tenant, 0, len(pairs))
	for _, p := range pairs {
		if strings.Contains(strings.TrimPrefix(p.Key, r.tenantsPrefix), "/") {
			continue
		}
		t, err := r.decodeTenant(p)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SetState changes a tenant's state with check-and-set on its key,
// retrying a few times when another writer got there first.
func (r *Registry) SetState(ctx context.Context, name string, state registry.State) (registry.Tenant, error) {
	return r.update(ctx, name, "set state of", func(t registry.Tenant) (registry.Tenant, error) {
		return registry.CheckSetState(t, state)
	})
}

// MarkDeleted soft-deletes a tenant; its host keys stay.
func (r *Registry) MarkDeleted(ctx context.Context, name string, purgeAfter time.Time) (registry.Tenant, error) {
	now := time.Now().UTC()
	purgeAfter = purgeAfter.UTC()
	return r.update(ctx, name, "delete (data kept)", func(t registry.Tenant) (registry.Tenant, error) {
		return registry.CheckMarkDeleted(t, now, purgeAfter)
	})
}

// RestoreTenant makes a deleted tenant active again.
func (r *Registry) RestoreTenant(ctx context.Context, name string) (registry.Tenant, error) {
	return r.update(ctx, name, "restore", registry.CheckRestore)
}

// update changes a tenant's JSON document with check-and-set on its key,
// retrying a few times when another writer got there first. A document
// without an ID (written before IDs existed) gets one.
func (r *Registry) update(ctx context.Context, name, what string, change func(registry.Tenant) (registry.Tenant, error)) (registry.Tenant, error) {
	for attempt := 0; attempt < 5; attempt++ {
		t, idx, err := r.getTenant(ctx, name)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("%s tenant %s: %w", what, name, err)
		}
		stored := t
		if t.ID == "" {
			t.ID = registry.NewID()
		}
		after, err := change(t)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("%s tenant %s: %w", what, name, err)
		}
		if after.Equal(stored) {
			return stored, nil
		}
		if err := registry.CheckUpdate(t, after); err != nil {
			return registry.Tenant{}, fmt.Errorf("%s tenant %s: %w", what, name, err)
		}
		val, err := json.Marshal(after)
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("%s tenant %s: encode: %w", what, name, err)
		}
		ok, _, err := r.client.KV().CAS(&api.KVPair{Key: r.tenantKey(name), Value: val, ModifyIndex: idx}, wopts(ctx))
		if err != nil {
			return registry.Tenant{}, fmt.Errorf("%s tenant %s in consul: %w", what, name, err)
		}
		if ok {
			r.log.Info("tenant updated", "tenant", name, "id", after.ID, "state", after.State)
			return after, nil
		}
	}
	return registry.Tenant{}, fmt.Errorf("%s tenant %s: %w", what, name, registry.ErrConflict)
}

// DeleteTenant removes a tenant's key and the host keys it owns in one
// transaction, each delete conditional on the index read just before.
func (r *Registry) DeleteTenant(ctx context.Context, name string) error {
	return r.deleteTenant(ctx, name, "")
}

// PurgeTenant is DeleteTenant if the tenant's ID is id.
func (r *Registry) PurgeTenant(ctx context.Context, name, id string) error {
	if id == "" {
		return fmt.Errorf("purge tenant %s: %w", name, invalid("id", "empty"))
	}
	return r.deleteTenant(ctx, name, id)
}

func (r *Registry) deleteTenant(ctx context.Context, name, id string) error {
	if registry.ValidateName(name) != nil {
		return fmt.Errorf("delete tenant %q: %w", name, registry.ErrNotFound)
	}
	for attempt := 0; attempt < 5; attempt++ {
		p, _, err := r.client.KV().Get(r.tenantKey(name), qopts(ctx))
		if err != nil {
			return fmt.Errorf("delete tenant %s: read from consul: %w", name, err)
		}
		if p == nil {
			return fmt.Errorf("delete tenant %s: %w", name, registry.ErrNotFound)
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: p.Key, Index: p.ModifyIndex}}}
		t, err := r.decodeTenant(p)
		if id != "" && (err != nil || t.ID != id) {
			return fmt.Errorf("purge tenant %s (ID %s): the tenant of that name has ID %q: %w", name, id, t.ID, registry.ErrNotFound)
		}
		if err != nil {
			r.log.Warn("deleting an unreadable tenant key; its host keys stay", "tenant", name, "err", err)
		}
		for _, h := range t.Hosts {
			hp, _, err := r.client.KV().Get(r.hostKey(h), qopts(ctx))
			if err != nil {
				return fmt.Errorf("delete tenant %s: read owner of %s: %w", name, h, err)
			}
			if hp != nil && string(hp.Value) == name {
				ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: hp.Key, Index: hp.ModifyIndex}})
			}
		}
		ok, _, _, err := r.client.Txn().Txn(ops, qopts(ctx))
		if err != nil {
			return fmt.Errorf("delete tenant %s in consul: %w", name, err)
		}
		if ok {
			r.log.Info("tenant deleted", "tenant", name)
			return nil
		}
	}
	return fmt.Errorf("delete tenant %s: %w", name, registry.ErrConflict)
}

// registration builds the agent service registration for an instance.
func (r *Registry) registration(in registry.Instance) (*api.AgentServiceRegistration, error) {
	if err := validInstanceID(in.ID); err != nil {
		return nil, err
	}
	if err := registry.ValidateName(in.Tenant); err != nil {
		return nil, invalid("tenant", "instance %s: %v", in.ID, err)
	}
	host, portStr, err := net.SplitHostPort(in.Addr)
	if err != nil || host == "" {
		return nil, invalid("addr", "instance %s: %q is not host:port", in.ID, in.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, invalid("addr", "instance %s: bad port in %q", in.ID, in.Addr)
	}
	meta := map[string]string{MetaTenant: in.Tenant}
	if in.MemoryKills > 0 {
		meta[MetaMemoryKills] = strconv.Itoa(in.MemoryKills)
	}
	return &api.AgentServiceRegistration{
		ID:      in.ID,
		Name:    r.ServiceName(in.Tenant),
		Tags:    []string{ServiceTag},
		Address: host,
		Port:    port,
		Meta:    meta,
		Check: &api.AgentServiceCheck{
			Name:                           "campus app ready",
			HTTP:                           "http://" + in.Addr + "/readyz",
			Interval:                       r.cfg.CheckInterval.String(),
			Timeout:                        r.cfg.CheckTimeout.String(),
			DeregisterCriticalServiceAfter: r.cfg.DeregisterCriticalAfter.String(),
		},
	}, nil
}

// validInstanceID accepts IDs that are safe in a URL path segment.
func validInstanceID(id string) error {
	if id == "" {
		return invalid("id", "an instance needs an ID")
	}
	if len(id) > 200 {
		return invalid("id", "instance ID longer than 200 characters")
	}
	for _, c := range id {
		if c <= ' ' || c == 0x7f || strings.ContainsRune("/?#%\\", c) {
			return invalid("id", "instance ID %q has a space, control character or one of / ? # %% \\", id)
		}
	}
	return nil
}

// RegisterInstance registers (or replaces, by ID) an instance with the
// local agent, with an HTTP check on its /readyz that the agent runs every
// CheckInterval and that alone decides its health from then on.
//
// in.Healthy is the caller's word that it has just seen the instance's
// /readyz answer 200 (the supervisor says so only after its own probe): the
// check then starts passing and the instance is routed at once, instead of
// after the agent's first check run (up to a CheckInterval later). Without
// it the check starts critical, so an instance nobody has seen ready is
// never routed before the agent has. Either way, an instance whose app
// stops answering goes critical at the next check run.
func (r *Registry) RegisterInstance(ctx context.Context, in registry.Instance) error {
	reg, err := r.registration(in)
	if err != nil {
		return fmt.Errorf("register instance: %w", err)
	}
	if in.Healthy {
		reg.Check.Status = api.HealthPassing
	}
	if err := r.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return fmt.Errorf("register instance %s of %s with consul: %w", in.ID, in.Tenant, err)
	}
	r.log.Info("instance registered", "tenant", in.Tenant, "instance", in.ID, "addr", in.Addr)
	return nil
}

// DeregisterInstance removes an instance from the local agent; an ID the
// agent does not know is not an error.
func (r *Registry) DeregisterInstance(ctx context.Context, id string) error {
	if err := validInstanceID(id); err != nil {
		return fmt.Errorf("deregister instance: %w", err)
	}
	if err := r.client.Agent().ServiceDeregisterOpts(id, qopts(ctx)); err != nil {
		if isUnknownService(err) {
			return nil
		}
		return fmt.Errorf("deregister instance %s from consul: %w", id, err)
	}
	r.log.Info("instance deregistered", "instance", id)
	return nil
}

func isUnknownService(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "Unknown service")
}
