//go:build unix

package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hits returns how many /readyz and /healthz checks the test child at
// addr has served.
func hits(t *testing.T, addr, tenant string) (ready, healthy int64) {
	t.Helper()
	body, err := get(addr, tenant, "/hits")
	if err != nil {
		t.Fatalf("GET /hits: %v", err)
	}
	if _, err := fmt.Sscanf(body, "%d %d", &ready, &healthy); err != nil {
		t.Fatalf("GET /hits = %q: %v", body, err)
	}
	return ready, healthy
}

// TestReadyChildGetsCheapLivenessChecks: once ready, a child is checked
// with /healthz (no database) every HealthInterval, and /readyz (a
// database ping) only every ReadinessInterval.
func TestReadyChildGetsCheapLivenessChecks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.HealthInterval = 50 * time.Millisecond
		c.ReadinessInterval = time.Hour
	})
	h.createTenant("accra")
	h.start()
	in, _ := h.waitInstance("accra", true, 0)
	ready0, healthy0 := hits(t, in.Addr, "accra")
	if ready0 < 1 {
		t.Fatalf("child ready after %d /readyz checks, want at least 1 (readiness gates the start)", ready0)
	}
	var ready, healthy int64
	waitFor(t, 30*time.Second, "five liveness checks", func() bool {
		ready, healthy = hits(t, in.Addr, "accra")
		return healthy >= healthy0+5
	})
	if ready != ready0 {
		t.Errorf("/readyz checked %d more times during %d liveness checks, want 0 (ReadinessInterval 1h)",
			ready-ready0, healthy-healthy0)
	}
}

// TestReadinessStillUnroutesReadyChild: with rare readiness checks, an
// app whose /readyz fails is still marked unhealthy (unrouted), then
// healthy again once it recovers.
func TestReadinessStillUnroutesReadyChild(t *testing.T) {
	t.Parallel()
	flag := t.TempDir() + "/unhealthy"
	h := newHarness(t, func(c *Config) {
		c.HealthInterval = 50 * time.Millisecond
		c.ReadinessInterval = 500 * time.Millisecond
	})
	h.setMode("accra", mode{unhealthyFile: flag})
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("accra", false, 0)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("accra", true, 0)
	if st, _ := h.status("accra"); st.PID != pid || st.Restarts != 0 {
		t.Errorf("Status = %+v, want pid %d and no restart", st, pid)
	}
}

// TestChecksAreCappedButStartsAreNot: at most MaxChecks steady checks run
// at once; a start poll (readiness gating a start) never waits for them.
func TestChecksAreCappedButStartsAreNot(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inside, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathReady {
			return // 200 at once
		}
		n := inside.Add(1)
		defer inside.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	k := newChecker(time.Minute, 2) // timeout 5s: longer than the test needs
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	results := make(chan bool, 3)
	for range 3 {
		wg.Go(func() {
			ok, _, _ := k.steady(ctx, addr, "", pathHealthy)
			results <- ok
		})
	}
	waitFor(t, 30*time.Second, "two checks in the handler", func() bool { return inside.Load() == 2 })
	if !k.ready(ctx, addr, "") {
		t.Errorf("start poll failed while the check slots were full")
	}
	if n := most.Load(); n != 2 {
		t.Errorf("%d checks ran at once, want 2 (MaxChecks)", n)
	}
	close(release)
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Errorf("a capped check failed once it got a slot")
		}
	}
	if n := most.Load(); n > 2 {
		t.Errorf("%d checks ran at once, want at most 2 (MaxChecks)", n)
	}
}

func TestJitterBounds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 3, 100 * time.Millisecond, 2 * time.Second} {
		for range 200 {
			if j := jitter(d); j < d-d/4 || j > d+d/4 {
				t.Fatalf("jitter(%s) = %s, want within [%s, %s]", d, j, d-d/4, d+d/4)
			}
			if f := firstIn(d); d > 0 && (f <= 0 || f > d) {
				t.Fatalf("firstIn(%s) = %s, want within (0, %s]", d, f, d)
			}
		}
	}
}
