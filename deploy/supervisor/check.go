package supervisor

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// Health checks (issue 12 follow-up: checks must not starve starts).
//
//   - A start is gated by readiness: /readyz (which pings the tenant's
//     database) is polled until 200. Start polls never wait for a check
//     slot.
//   - A ready child gets a liveness check, the cheap /healthz (no
//     database), every HealthInterval, and a readiness check, /readyz,
//     only every ReadinessInterval (every HealthInterval while it is
//     unhealthy, so that it is routed again soon after it recovers).
//   - Every period is jittered (uniform in [3/4, 5/4] of it, the first
//     one uniform in (0, period]) so that the checks of children started
//     together do not stay aligned.
//   - At most MaxChecks steady-state checks run at once on the machine;
//     a check waits for a slot, a start never does.
//   - Any check counts for liveness: LivenessFailures unanswered checks in
//     a row (timeout, refused; any HTTP answer counts) and the child is
//     killed and replaced.

// Probe paths of a child (campus app serves both).
const (
	pathReady   = "/readyz"
	pathHealthy = "/healthz"
)

// checker asks children whether they are alive and ready.
type checker struct {
	client *http.Client
	slots  chan struct{} // steady-state checks in progress
}

func newChecker(interval time.Duration, maxChecks int) *checker {
	timeout := min(max(interval, time.Second), 5*time.Second)
	return &checker{
		slots: make(chan struct{}, maxChecks),
		client: &http.Client{
			Timeout: timeout,
			// No proxy from the environment, no idle connections kept to
			// children that may be gone by the next check.
			Transport: &http.Transport{
				DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
				DisableKeepAlives: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// ready reports whether GET http://addr/readyz answers 200. host, when
// set, is sent as the Host header, as the proxy would. It is the start
// poll: it takes no check slot.
func (k *checker) ready(ctx context.Context, addr, host string) bool {
	ok, _, _ := k.probe(ctx, addr, host, pathReady)
	return ok
}

// steady is probe for a ready child: it first waits for one of the
// MaxChecks slots (or the end of ctx: then nothing was checked and
// answered is false; the caller sees ctx ended).
func (k *checker) steady(ctx context.Context, addr, host, path string) (ok, answered bool, busy int) {
	select {
	case k.slots <- struct{}{}:
	case <-ctx.Done():
		return false, false, 0
	}
	defer func() { <-k.slots }()
	return k.probe(ctx, addr, host, path)
}

// probe GETs path and reports whether it answered 200, and whether the
// child answered at all: a child that answers 503 is alive but not ready
// (its database may be down); one that does not answer within the timeout
// may be hung (see Config.LivenessFailures). busy is the answer's
// BusyHeader (busy.go).
func (k *checker) probe(ctx context.Context, addr, host, path string) (ok, answered bool, busy int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return false, false, 0
	}
	if host != "" {
		req.Host = host
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return false, false, 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK, true, busyCount(resp.Header.Get(BusyHeader))
}

// jitter returns a period around d: uniform in [3/4 d, 5/4 d].
func jitter(d time.Duration) time.Duration {
	q := d / 4
	if q <= 0 {
		return d
	}
	return d - q + rand.N(2*q+1)
}

// firstIn returns the delay of a child's first check of period d: uniform
// in (0, d], so that children started together spread their checks.
func firstIn(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return 1 + rand.N(d)
}
