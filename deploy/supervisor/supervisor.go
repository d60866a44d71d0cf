package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
)

// Defaults for the zero fields of Config.
const (
	DefaultHost             = "127.0.0.1"
	DefaultInstanceIDPrefix = "dev-"
	DefaultReadyTimeout     = 30 * time.Second
	DefaultHealthInterval   = 2 * time.Second
	// DefaultReadinessInterval is the default period of /readyz checks
	// of a ready child (see check.go).
	DefaultReadinessInterval = 30 * time.Second
	DefaultStopGrace         = 10 * time.Second
	DefaultBackoffMin        = 250 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultStableAfter       = 30 * time.Second
)

// Config is what New needs. Registry and Command are required.
type Config struct {
	// Registry is read with Watch (desired state) and written with the
	// instances of the children.
	Registry registry.Registry
	// Command builds the command of one child serving tenant t on the
	// listen address (host:port). The supervisor sets SysProcAttr (own
	// process group, Pdeathsig on Linux) and, where nil, Stdout, Stderr
	// and Env (to ChildEnv(nil): a child never inherits the supervisor's
	// whole environment); the command must not have been started.
	Command func(t registry.Tenant, listen string) *exec.Cmd
	// Host is the loopback address children listen on (default
	// 127.0.0.1).
	Host string
	// InstanceIDPrefix starts the ID of every instance this supervisor
	// registers: prefix + tenant + "-" + port (default "dev-"). At start,
	// Run deregisters instances with this prefix left over from an
	// earlier run, so supervisors sharing a registry need distinct
	// prefixes.
	InstanceIDPrefix string
	// ReadyTimeout bounds the wait for a new child's first 200 from
	// /readyz; a child that misses it is stopped and restarted (default
	// 30s).
	ReadyTimeout time.Duration
	// HealthInterval is the period of the liveness checks (/healthz, no
	// database) of a ready child, jittered (default 2s; see check.go).
	HealthInterval time.Duration
	// ReadinessInterval is the period of the readiness checks (/readyz,
	// a database ping) of a ready child, jittered; an unhealthy child is
	// checked every HealthInterval (default DefaultReadinessInterval, and
	// never less than HealthInterval).
	ReadinessInterval time.Duration
	// MaxChecks caps the health checks of ready children running at once
	// on this machine (default DefaultMaxChecks). Start polls are not
	// counted: a check never delays a start.
	MaxChecks int
	// StopGrace is how long a child has to exit after SIGTERM before its
	// process group gets SIGKILL (default 10s).
	StopGrace time.Duration
	// BackoffMin and BackoffMax bound the delay before a restart: after
	// the n-th consecutive failure it is BackoffMin*2^(n-1), capped at
	// BackoffMax, then jittered down by up to half (defaults 250ms and
	// 30s).
	BackoffMin, BackoffMax time.Duration
	// StableAfter is how long a child must have served (since ready) for
	// its next failure to count as the first again, resetting the backoff
	// (default 30s).
	StableAfter time.Duration
	// Logger receives the supervisor's own log lines (default
	// slog.Default()).
	Logger *slog.Logger
	// Registerer, when not nil, gets the supervisor's metrics.
	Registerer prometheus.Registerer
	// DataDir, when set, is the folder whose disk holds the databases
	// (campus dev's data folder): its free space is a metric and its
	// filling up is logged (datadisk.go).
	DataDir string
	// Output receives the children's stdout and stderr, copied whole line
	// by whole line so that children do not interleave within a line
	// (default os.Stderr).
	Output io.Writer

	// Scale to zero and liveness (issue 12; see scale.go).

	// IdleTimeout is how long a tenant may go without a request before
	// its child is stopped, unless the tenant's own IdleTimeout overrides
	// it (registry.Tenant.IdleAfter). 0 means never. Idle stop needs
	// Activity.
	IdleTimeout time.Duration
	// Activity tells whether a tenant is being used (nil: no idle stop).
	Activity Activity
	// StartIdle leaves tenants that may idle (IdleAfter > 0) stopped at
	// start until a Wake, instead of starting every active tenant.
	StartIdle bool
	// MaxStarts caps the children starting at once (from start to ready)
	// on this machine; woken tenants (requests waiting) go first
	// (default DefaultMaxStarts).
	MaxStarts int
	// LivenessFailures is how many /readyz checks in a row a ready child
	// may leave unanswered (timeout, refused; a 503 is an answer) before
	// it is killed and started again (default 3; negative: never).
	LivenessFailures int
	// WakeSource, when not nil, is watched for wake requests (usually the
	// Registry itself, whose RequestWake proxies on other machines call).
	WakeSource WakeSource
	// Pool keeps pre-started processes that hold no tenant, bound to one
	// at start time (see pool.go); its zero value is no pool.
	Pool PoolConfig

	// Memory budget (issue 20; see budget.go and running.go).

	// Memory is each child's memory limit in bytes unless its tenant has
	// its own (registry.Tenant.Memory); 0: no limit. Enforced with
	// cgroups where the supervisor can write them, else GOMEMLIMIT only.
	Memory int64
	// BusyLimit bounds how long an app that says it runs imports or
	// deletes (BusyHeader on /healthz) is kept from idle stop and
	// eviction (default DefaultBusyLimit; see busy.go).
	BusyLimit time.Duration
	// MaxRunning caps the children with a process on this machine; 0:
	// no cap. A woken tenant beyond it first stops the least recently
	// used one (needs Activity); see running.go.
	MaxRunning int
}

// ChildState is where a child is in its life cycle.
type ChildState string

// Child states, as reported by Status.
const (
	// StateStarting: the process runs but /readyz has not answered 200
	// yet; no instance is registered.
	StateStarting ChildState = "starting"
	// StateReady: registered and healthy.
	StateReady ChildState = "ready"
	// StateUnhealthy: registered, but the last /readyz check failed.
	StateUnhealthy ChildState = "unhealthy"
	// StateBackoff: no process; waiting to restart (see Wake).
	StateBackoff ChildState = "backoff"
	// StateIdle: no process; the tenant was idle (or starts idle) and
	// waits for a Wake (scale to zero).
	StateIdle ChildState = "idle"
	// StateStopping: deregistered, the process is being stopped because
	// the tenant is no longer active or the supervisor is shutting down.
	StateStopping ChildState = "stopping"
	// StateStopped: the process is gone and will not be restarted.
	StateStopped ChildState = "stopped"
)

// ChildStatus describes one child at the time of a Status call.
type ChildStatus struct {
	Tenant     string
	InstanceID string // empty when no process runs
	PID        int    // 0 when no process runs
	Addr       string // host:port of the current or last process
	State      ChildState
	Restarts   int       // starts after the first
	Since      time.Time // when State was entered
	LastExit   string    // how the last process ended, e.g. "exit status 1" or "signal: killed"
	// MemoryKills counts the processes of this slot the kernel killed
	// for exceeding the memory limit.
	MemoryKills int
}

// Supervisor runs one child process per active tenant. Create it with New
// and call Run once.
type Supervisor struct {
	cfg     Config
	log     *slog.Logger
	met     *metrics
	out     *syncWriter
	checker *checker

	gate *gate
	pool chan *proc // ready unbound processes; nil without a pool
	room *room      // the running cap (running.go)
	cg   *cgroups   // this supervisor's cgroups; nil: GOMEMLIMIT only (budget.go)

	mu       sync.Mutex
	running  bool
	children map[string]*child    // the wanted child of each active tenant
	retiring map[*child]string    // children being stopped, by tenant
	known    map[string]bool      // tenants of the last snapshot
	pending  map[string]time.Time // recent wakes of tenants not yet known
}

// New checks cfg, fills in defaults and registers the metrics.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Registry == nil {
		return nil, errors.New("supervisor: Config.Registry is required")
	}
	if cfg.Command == nil {
		return nil, errors.New("supervisor: Config.Command is required")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.InstanceIDPrefix == "" {
		cfg.InstanceIDPrefix = DefaultInstanceIDPrefix
	}
	setDefault(&cfg.ReadyTimeout, DefaultReadyTimeout)
	setDefault(&cfg.HealthInterval, DefaultHealthInterval)
	setDefault(&cfg.ReadinessInterval, DefaultReadinessInterval)
	cfg.ReadinessInterval = max(cfg.ReadinessInterval, cfg.HealthInterval)
	if cfg.MaxChecks <= 0 {
		cfg.MaxChecks = DefaultMaxChecks
	}
	setDefault(&cfg.StopGrace, DefaultStopGrace)
	setDefault(&cfg.BackoffMin, DefaultBackoffMin)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)
	setDefault(&cfg.StableAfter, DefaultStableAfter)
	setDefault(&cfg.BusyLimit, DefaultBusyLimit)
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, fmt.Errorf("supervisor: BackoffMax %s is less than BackoffMin %s", cfg.BackoffMax, cfg.BackoffMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.MaxStarts <= 0 {
		cfg.MaxStarts = DefaultMaxStarts
	}
	if cfg.LivenessFailures == 0 {
		cfg.LivenessFailures = DefaultLivenessFailures
	}
	if cfg.IdleTimeout < 0 {
		return nil, fmt.Errorf("supervisor: IdleTimeout %s is negative", cfg.IdleTimeout)
	}
	if cfg.Memory < 0 || cfg.MaxRunning < 0 {
		return nil, fmt.Errorf("supervisor: Memory %d and MaxRunning %d must not be negative", cfg.Memory, cfg.MaxRunning)
	}
	if cfg.Pool.Size < 0 || cfg.Pool.Size > 0 && (cfg.Pool.Command == nil || cfg.Pool.Assignment == nil) {
		return nil, errors.New("supervisor: a Pool needs a Size >= 0, and Command and Assignment when Size > 0")
	}
	met := newMetrics()
	if cfg.Registerer != nil {
		if err := met.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("supervisor: register metrics: %w", err)
		}
		if _, _, err := diskSpace(cfg.DataDir); cfg.DataDir != "" && err == nil {
			for _, c := range dataDiskCollectors(cfg.DataDir) {
				if err := cfg.Registerer.Register(c); err != nil {
					return nil, fmt.Errorf("supervisor: register metrics: %w", err)
				}
			}
		}
	}
	var pool chan *proc
	if cfg.Pool.Size > 0 {
		pool = make(chan *proc, cfg.Pool.Size)
	}
	return &Supervisor{
		pool:     pool,
		cfg:      cfg,
		log:      cfg.Logger,
		met:      met,
		out:      &syncWriter{w: cfg.Output},
		checker:  newChecker(cfg.HealthInterval, cfg.MaxChecks),
		gate:     newGate(cfg.MaxStarts),
		room:     newRoom(cfg.MaxRunning),
		children: map[string]*child{},
		retiring: map[*child]string{},
		known:    map[string]bool{},
		pending:  map[string]time.Time{},
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Run supervises children until ctx ends, then deregisters and stops all
// of them concurrently, waits for them and returns nil. It returns an
// error only when it cannot read the registry at start or is called
// twice.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("supervisor: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	snap, err := s.cfg.Registry.Snapshot(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("supervisor: read registry: %w", err)
	}
	s.deregisterStale(ctx, snap)

	if s.cfg.Memory > 0 {
		if s.cg, err = openCgroups(); err != nil {
			s.log.Warn("memory limits: cannot use cgroups, so the kernel does not enforce them; each app gets GOMEMLIMIT only",
				"reason", err.Error())
		}
	}

	var wg sync.WaitGroup
	defer func() {
		// ctx is done, so every child's context is too: they deregister
		// and stop concurrently.
		wg.Wait()
		if s.cg != nil {
			s.cg.close()
		}
		s.log.Info("supervisor stopped")
	}()
	s.log.Info("supervisor started", "instance_id_prefix", s.cfg.InstanceIDPrefix,
		"idle_timeout", s.cfg.IdleTimeout, "start_idle", s.cfg.StartIdle, "max_starts", s.cfg.MaxStarts,
		"memory_limit", s.cfg.Memory, "cgroups", s.cg != nil, "max_running", s.cfg.MaxRunning)
	if s.cfg.WakeSource != nil {
		// The cursor is taken before the first snapshot is acted on, so
		// a wake requested once a tenant shows as idle is never taken
		// for an old one (a failure here is retried by watchWakes).
		_, cursor, _ := s.cfg.WakeSource.WatchWakes(ctx, 0)
		wg.Go(func() { s.watchWakes(ctx, cursor) })
	}
	if s.pool != nil {
		wg.Go(func() { s.runPool(ctx) })
	}
	if s.cfg.DataDir != "" {
		wg.Go(func() { watchDataDisk(ctx, s.cfg.DataDir, s.log) })
	}

	failures := 0
	for {
		s.reconcile(ctx, &wg, snap)
		next, err := s.cfg.Registry.Watch(ctx, snap.Version)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			d := backoff(failures, time.Second, 30*time.Second)
			s.log.Warn("watch registry failed; retrying", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		failures = 0
		snap = next
	}
}

// deregisterStale removes instances a crashed earlier run left behind.
func (s *Supervisor) deregisterStale(ctx context.Context, snap registry.Snapshot) {
	for _, in := range snap.Instances {
		if !strings.HasPrefix(in.ID, s.cfg.InstanceIDPrefix) {
			continue
		}
		if err := s.cfg.Registry.DeregisterInstance(ctx, in.ID); err != nil {
			s.log.Warn("deregister stale instance failed", "tenant", in.Tenant, "instance", in.ID, "err", err)
			continue
		}
		s.log.Info("deregistered stale instance", "tenant", in.Tenant, "instance", in.ID, "addr", in.Addr)
	}
}

// reconcile makes the set of children match the active tenants of snap.
func (s *Supervisor) reconcile(ctx context.Context, wg *sync.WaitGroup, snap registry.Snapshot) {
	desired := map[string]registry.Tenant{}
	known := map[string]bool{}
	for _, t := range snap.Tenants {
		known[t.Name] = true
		if t.State == registry.StateActive {
			desired[t.Name] = t
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = known
	for name, c := range s.children {
		t, ok := desired[name]
		switch {
		case !ok && known[name]:
			c.log.Info("tenant not active; stopping child")
		case !ok:
			c.log.Info("tenant deleted; stopping child")
		case !sameTenant(c.tenant, t):
			c.log.Info("tenant changed; replacing child")
		default:
			c.idleAfter.Store(int64(t.IdleAfter(s.cfg.IdleTimeout)))
			continue
		}
		c.cancel()
		delete(s.children, name)
		s.retiring[c] = name
		if !known[name] {
			s.met.forget(name)
		}
	}
	for name, t := range desired {
		if _, ok := s.children[name]; ok {
			continue
		}
		// A new child waits for older ones of the same tenant to stop,
		// so that a tenant never has two processes.
		var prev []<-chan struct{}
		for old, oldName := range s.retiring {
			if oldName == name {
				prev = append(prev, old.done)
			}
		}
		c := s.newChild(ctx, t, prev)
		if at, ok := s.pending[name]; ok {
			delete(s.pending, name)
			c.wakeUp(at)
		}
		s.children[name] = c
		wg.Go(func() {
			defer s.retire(c)
			c.run()
		})
	}
}

// retire removes a finished child from the supervisor's tables.
func (s *Supervisor) retire(c *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.retiring, c)
	if s.children[c.tenant.Name] == c { // stopped by the end of Run
		delete(s.children, c.tenant.Name)
	}
	close(c.done)
}

// sameTenant reports whether a running child of a may keep serving b. A
// tenant re-created under the same name (another ID) gets a new child.
// State is not compared: the caller only asks about active tenants.
func sameTenant(a, b registry.Tenant) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Database == b.Database && a.DisplayName == b.DisplayName &&
		a.Memory == b.Memory && a.PrimaryHost == b.PrimaryHost && slices.Equal(a.Hosts, b.Hosts) && a.CreatedAt.Equal(b.CreatedAt)
}

// Wake asks for tenant's child to be started now: an idle child starts,
// one waiting out a restart backoff starts at once, one waiting for a
// start slot goes ahead of children nobody waits for. It is the
// scale-to-zero hook for a request that found no instance (the proxy's
// Waker). It never blocks. A tenant that is not active in the registry is
// never started: the wake is only a claim. One the supervisor has not seen
// yet (just created) is remembered for a few seconds.
func (s *Supervisor) Wake(ctx context.Context, tenant string) {
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	c := s.children[tenant]
	if c == nil && !s.known[tenant] && registry.ValidateName(tenant) == nil {
		s.rememberWakeLocked(tenant, now)
	}
	s.mu.Unlock()
	if c != nil {
		c.wakeUp(now)
		s.gate.promote(c)
	}
}

// Status describes every child, sorted by tenant; a tenant whose old
// child is still stopping while its new one waits may appear twice.
func (s *Supervisor) Status() []ChildStatus {
	s.mu.Lock()
	all := make([]*child, 0, len(s.children)+len(s.retiring))
	for _, c := range s.children {
		all = append(all, c)
	}
	for c := range s.retiring {
		all = append(all, c)
	}
	s.mu.Unlock()
	out := make([]ChildStatus, 0, len(all))
	for _, c := range all {
		out = append(out, c.status())
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Since.Before(out[j].Since)
	})
	return out
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
