package supervisor

import (
	"encoding/json"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/campus-saas/campus/registry"
)

// CampusApp is how a supervisor runs Campus's own app: `BIN app` for one
// tenant (its record and its database URI, nothing else) and `BIN
// app-pool` for the pre-started pool. `campus dev` and the benches of
// cmd/campus-bench use it.
type CampusApp struct {
	Bin       string // the campus binary
	MongoURI  string
	LogLevel  string
	LogFormat string
}

// Command is Config.Command: a child gets its tenant's record, not a
// registry, so it cannot register instances or touch other tenants
// through Campus, and its environment is the allowlist plus its database
// URI.
func (c CampusApp) Command(t registry.Tenant, listen string) *exec.Cmd {
	rec, err := json.Marshal(t)
	if err != nil {
		return nil // a Tenant always encodes
	}
	cmd := exec.Command(c.Bin, "app",
		"--tenant", t.Name,
		"--tenant-record", string(rec),
		"--listen", listen,
		"--migrate",
		"--log-level", c.LogLevel,
		"--log-format", c.LogFormat,
	)
	cmd.Env = ChildEnv(nil, "MONGODB_URI="+c.MongoURI)
	return cmd
}

// PoolAssignment is the one line the supervisor writes to a pooled
// `campus app-pool` process: one tenant's record and that tenant's
// database URI.
type PoolAssignment struct {
	Tenant   registry.Tenant `json:"tenant"`
	Listen   string          `json:"listen"`
	MongoURI string          `json:"mongodb_uri"`
	LogLevel string          `json:"log_level"`
	LogFmt   string          `json:"log_format"`
}

// Pool is the supervisor's pool of size `campus app-pool` processes.
func (c CampusApp) Pool(size int) PoolConfig {
	return PoolConfig{
		Size: size,
		Command: func() *exec.Cmd {
			cmd := exec.Command(c.Bin, "app-pool")
			cmd.Env = ChildEnv(nil) // no URI, no tenant: the allowlist only
			return cmd
		},
		Assignment: func(t registry.Tenant, listen string) ([]byte, error) {
			return json.Marshal(PoolAssignment{Tenant: t, Listen: listen, MongoURI: c.MongoURI, LogLevel: c.LogLevel, LogFmt: c.LogFormat})
		},
	}
}

// ActivityRouter is an Activity that is also a Router (the proxy).
type ActivityRouter interface {
	Activity
	Router
}

// LateActivity is the Activity of a proxy made after the supervisor (the
// proxy's Waker is the supervisor). Until Set, every tenant counts as busy
// (nothing is stopped) and nothing is routed.
type LateActivity struct {
	p atomic.Pointer[ActivityRouter]
}

// Set gives the proxy.
func (a *LateActivity) Set(src ActivityRouter) { a.p.Store(&src) }

func (a *LateActivity) Activity(tenant string) (int64, time.Time) {
	p := a.p.Load()
	if p == nil {
		return 1, time.Now()
	}
	return (*p).Activity(tenant)
}

// RoutesTo implements Router.
func (a *LateActivity) RoutesTo(tenant, id string) bool {
	p := a.p.Load()
	return p != nil && (*p).RoutesTo(tenant, id)
}
