package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
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

// maxAssignment bounds the assignment line.
const maxAssignment = 1 << 20

// ReadAssignment reads the one assignment line a pooled process gets on
// stdin, refusing anything but one tenant's record, a listen address and
// a database URI.
func ReadAssignment(r io.Reader) (PoolAssignment, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxAssignment)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return PoolAssignment{}, fmt.Errorf("read assignment on stdin: %w", err)
	}
	var a PoolAssignment
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return PoolAssignment{}, fmt.Errorf("read assignment: %w", err)
	}
	if err := registry.ValidateName(a.Tenant.Name); err != nil || a.Listen == "" || a.MongoURI == "" {
		return PoolAssignment{}, errors.New("read assignment: a tenant, a listen address and a database URI are required")
	}
	if a.LogLevel == "" {
		a.LogLevel = "info"
	}
	if a.LogFmt == "" {
		a.LogFmt = "json"
	}
	return a, nil
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
