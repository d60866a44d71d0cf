package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/campus-saas/campus/registry"
)

// Lookups on a miss (issue 11): a request for a host the table has no
// route for, or whose active tenant has no healthy instance, asks the
// registry for that one host (Config.Lookup, a registry.HostLookup) before
// answering 404 or holding. The backend merges what it read into its
// snapshots, so the answer reaches the table the usual way (Run → Update,
// one build path, copy-on-write, swapped atomically), and the request
// waits only for that table. Created → first 200 then no longer depends on
// how long the watch takes to re-read a registry of many tenants.
//
// Hostile Host headers must not turn into a registry load amplifier:
//   - only hosts that pass registry.NormalizeHost get here (else 400);
//   - one lookup per host at a time (singleflight): concurrent requests
//     for a host share its answer;
//   - a global token bucket (golang.org/x/time/rate, Config.LookupRate)
//     bounds lookups per second, whatever the number of hosts;
//   - a host that a lookup did not route is not looked up again for
//     Config.LookupNegativeTTL.
//
// A request that gets no lookup (limited, cached, failed) is answered as
// it would be without lookups: 404, or held. A lookup never routes
// anything itself: it can only make the table the registry's newer view.

// Defaults of the lookup settings.
const (
	DefaultLookupRate        = 50 // lookups per second, with a burst of as many (3 small Consul reads each)
	DefaultLookupNegativeTTL = time.Second
	lookupTimeout            = 2 * time.Second
	maxNegative              = 4096 // hosts remembered as not routed
)

// MetricHostLookups counts host lookups on a miss, by result.
const (
	MetricHostLookups = "campus_proxy_host_lookups_total"
	LabelResult       = "result"
	LookupRouted      = "routed"      // the host is routed with a healthy instance now
	LookupNoInstance  = "no_instance" // its tenant is routed but has no healthy instance
	LookupUnknown     = "unknown"     // no tenant routes the host
	LookupLimited     = "limited"     // refused by the rate limit: not asked
	LookupCached      = "cached"      // not routed by a recent lookup: not asked
	LookupError       = "error"       // the registry could not answer
)

type lookups struct {
	src    registry.HostLookup
	lim    *rate.Limiter
	negTTL time.Duration
	group  singleflight.Group
	counts map[string]prometheus.Counter

	mu  sync.Mutex
	neg map[string]time.Time // host → until when it is not looked up again
}

func newLookups(cfg Config, reg prometheus.Registerer) (*lookups, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricHostLookups,
		Help: "Registry lookups of one host on a request with no route or no healthy instance, by result (routed, no_instance, unknown, limited, cached, error).",
	}, []string{LabelResult})
	if err := reg.Register(vec); err != nil {
		return nil, err
	}
	l := &lookups{src: cfg.Lookup, negTTL: cfg.LookupNegativeTTL, counts: map[string]prometheus.Counter{}, neg: map[string]time.Time{}}
	for _, r := range []string{LookupRouted, LookupNoInstance, LookupUnknown, LookupLimited, LookupCached, LookupError} {
		l.counts[r] = vec.WithLabelValues(r)
	}
	perSecond := cfg.LookupRate
	l.lim = rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))
	return l, nil
}

// negative reports whether host was found not routed within negTTL.
func (l *lookups) negative(host string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.neg[host]
	if ok && now.After(until) {
		delete(l.neg, host)
		return false
	}
	return ok
}

func (l *lookups) remember(host string, now time.Time) {
	if l.negTTL <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.neg) >= maxNegative {
		for h, until := range l.neg {
			if now.After(until) {
				delete(l.neg, h)
			}
		}
		if len(l.neg) >= maxNegative {
			clear(l.neg) // the rate limit bounds how fast it fills again
		}
	}
	l.neg[host] = now.Add(l.negTTL)
}

// lookupHost asks the registry about host and returns the table that
// holds its answer, or nil when there was no lookup or it found nothing to
// route.
func (p *Proxy) lookupHost(ctx context.Context, host string) *table {
	l := p.lookups
	if l == nil {
		return nil
	}
	if l.negative(host, time.Now()) {
		l.counts[LookupCached].Inc()
		return nil
	}
	ch := l.group.DoChan(host, func() (any, error) {
		if !l.lim.Allow() {
			l.counts[LookupLimited].Inc()
			return nil, nil
		}
		// Shared by every request waiting on this host: not cancelled
		// when the first one leaves.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		res, err := l.src.LookupHost(lctx, host)
		if err != nil {
			if !errors.Is(err, errors.ErrUnsupported) {
				p.log.Warn("host lookup failed", "host", host, "err", err)
			}
			l.counts[LookupError].Inc()
			l.remember(host, time.Now())
			return nil, nil
		}
		t := p.awaitVersion(lctx, res.Version)
		rt := t.routes[host]
		switch {
		case res.Tenant == "" || rt == nil:
			l.counts[LookupUnknown].Inc()
		case rt.state == registry.StateActive && len(rt.pool) == 0:
			l.counts[LookupNoInstance].Inc()
		default:
			l.counts[LookupRouted].Inc()
			return t, nil
		}
		l.remember(host, time.Now())
		return t, nil
	})
	select {
	case res := <-ch:
		t, _ := res.Val.(*table)
		return t
	case <-ctx.Done():
		return nil
	}
}

// awaitVersion waits (up to ctx) until Update has been given a snapshot
// at version v or later, and returns the current table.
func (p *Proxy) awaitVersion(ctx context.Context, v uint64) *table {
	for {
		p.mu.Lock()
		done, ch := p.applied >= v, p.appliedCh
		p.mu.Unlock()
		if done {
			return p.table.Load()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p.table.Load()
		}
	}
}
