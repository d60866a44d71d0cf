package main

import (
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/proxy"
)

// Scale to zero (issue 12): the supervisor flags of `campus dev`.
type scaleOptions struct {
	idleTimeout      time.Duration
	startIdle        bool
	maxStarts        int
	livenessFailures int
	pool             int
	healthInterval   time.Duration
	readyInterval    time.Duration
}

// defaultIdleTimeout is campus dev's --idle-timeout.
const defaultIdleTimeout = 15 * time.Minute

func (o *scaleOptions) register(fs interface {
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
	IntVar(*int, string, int, string)
}) {
	fs.DurationVar(&o.idleTimeout, "idle-timeout", defaultIdleTimeout, "stop a tenant's app after this long without a request; the next request starts it again (0: never; campus tenant set T --idle-timeout overrides it per tenant)")
	fs.BoolVar(&o.startIdle, "start-idle", false, "start no app until its tenant gets a request (tenants whose idle timeout is not 0)")
	fs.IntVar(&o.maxStarts, "max-starts", supervisor.DefaultMaxStarts, "apps starting at once at most; tenants with waiting requests go first")
	fs.DurationVar(&o.healthInterval, "health-interval", supervisor.DefaultHealthInterval, "how often the supervisor checks that each app is alive (/healthz, no database; jittered)")
	fs.DurationVar(&o.readyInterval, "readiness-interval", supervisor.DefaultReadinessInterval, "how often the supervisor checks that each running app is ready (/readyz pings its database; jittered; an unready app is checked every --health-interval)")
	fs.IntVar(&o.pool, "pool", 0, "keep this many app processes pre-started, holding no tenant, each bound to one tenant when it starts (faster cold starts)")
	fs.IntVar(&o.livenessFailures, "liveness-failures", supervisor.DefaultLivenessFailures, "kill and restart an app that leaves this many health checks in a row unanswered (negative: never)")
}

func (o *scaleOptions) check() error {
	if o.idleTimeout < 0 {
		return usageErr("--idle-timeout %s: must be 0 (never) or positive", o.idleTimeout)
	}
	if o.idleTimeout > 0 && o.idleTimeout < time.Second {
		return usageErr("--idle-timeout %s: must be 0 (never) or at least 1s", o.idleTimeout)
	}
	if o.healthInterval < 100*time.Millisecond {
		return usageErr("--health-interval %s: must be at least 100ms", o.healthInterval)
	}
	if o.readyInterval < o.healthInterval {
		return usageErr("--readiness-interval %s: must be at least --health-interval %s", o.readyInterval, o.healthInterval)
	}
	if o.pool < 0 {
		return usageErr("--pool %d: must be 0 or more", o.pool)
	}
	if o.maxStarts < 1 {
		return usageErr("--max-starts %d: must be at least 1", o.maxStarts)
	}
	return nil
}

// apply sets the scale-to-zero fields of cfg; the proxy, once made, is
// the supervisor's Activity (through po.OnProxy).
func (o *scaleOptions) apply(cfg *supervisor.Config, po *proxyOptions) {
	act := &supervisor.LateActivity{}
	cfg.IdleTimeout = o.idleTimeout
	cfg.Activity = act
	cfg.StartIdle = o.startIdle
	cfg.MaxStarts = o.maxStarts
	cfg.LivenessFailures = o.livenessFailures
	cfg.HealthInterval = o.healthInterval
	cfg.ReadinessInterval = o.readyInterval
	// Proxies on other machines (campus proxy --wake) ask through the
	// registry.
	cfg.WakeSource = cfg.Registry
	po.OnProxy = func(p *proxy.Proxy) { act.Set(p) }
}
