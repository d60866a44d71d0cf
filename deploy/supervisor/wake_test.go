//go:build unix

package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
)

// withProxy starts a real proxy over the harness's registry, waking the
// harness's supervisor (as campus dev wires them), and returns its URL.
// configure runs on the supervisor Config before New: the proxy is its
// Activity.
func withProxy(t *testing.T, configure func(*Config)) (*harness, string) {
	t.Helper()
	ref := &proxyRef{}
	h := newHarness(t, func(c *Config) {
		if configure != nil {
			configure(c)
		}
		c.Activity = ref
	})
	p, err := proxy.New(proxy.Config{
		Logger:      slog.New(slog.DiscardHandler),
		Registerer:  prometheus.NewRegistry(),
		HoldTimeout: time.Minute,
		Waker:       h.sup,
	})
	if err != nil {
		t.Fatal(err)
	}
	ref.p.Store(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx, h.reg) }()
	t.Cleanup(func() { cancel(); <-done })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return h, front.URL
}

func fetch(ctx context.Context, url, host, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestConcurrentRequestsToColdTenantStartOneProcess: N requests at once
// to a tenant with no process: one start, N answers, each from it.
func TestConcurrentRequestsToColdTenantStartOneProcess(t *testing.T) {
	t.Parallel()
	h, url := withProxy(t, func(c *Config) {
		c.IdleTimeout = time.Hour
		c.StartIdle = true
	})
	h.createTenant("accra")
	h.createTenant("lagos")
	h.start()
	h.waitState("accra", StateIdle)

	const n = 40
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			code, body, err := fetch(ctx, url, "accra.school.localhost", "/tenant")
			if err == nil && (code != http.StatusOK || body != "accra") {
				err = fmt.Errorf("status %d body %q, want 200 from accra", code, body)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s := h.startTimes("accra"); len(s) != 1 {
		t.Errorf("%d concurrent requests started accra %d times, want once", n, len(s))
	}
	if s := h.startTimes("lagos"); len(s) != 0 {
		t.Errorf("requests for accra started lagos %d times", len(s))
	}
	if c := testutil.ToFloat64(h.sup.met.coldStarts); c != 1 {
		t.Errorf("cold starts = %v, want 1", c)
	}
}

// TestProxyNeverWakesSuspendedOrDeletedTenant: their hosts are answered
// (maintenance page, 404) without a start.
func TestProxyNeverWakesSuspendedOrDeletedTenant(t *testing.T) {
	t.Parallel()
	h, url := withProxy(t, func(c *Config) {
		c.IdleTimeout = time.Hour
		c.StartIdle = true
	})
	ctx := context.Background()
	h.createTenant("kumasi")
	h.createTenant("gone")
	if _, err := h.reg.SetState(ctx, "kumasi", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.MarkDeleted(ctx, "gone", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.createTenant("accra")
	h.start()
	h.waitState("accra", StateIdle)
	// accra wakes (the proxy works). It was registered after the others,
	// so once the proxy's table has it, it has their states too; until
	// then accra's host is unknown to the proxy (404).
	var code int
	var body string
	waitFor(t, 20*time.Second, "the proxy to know accra", func() bool {
		var err error
		code, body, err = fetch(ctx, url, "accra.school.localhost", "/tenant")
		return err == nil && code != http.StatusNotFound
	})
	if code != 200 || body != "accra" {
		t.Fatalf("accra: %d %q", code, body)
	}
	for _, c := range []struct {
		host string
		want int
	}{
		{"kumasi.school.localhost", http.StatusServiceUnavailable},
		{"gone.school.localhost", http.StatusNotFound},
	} {
		for range 3 {
			code, _, err := fetch(ctx, url, c.host, "/tenant")
			if err != nil || code != c.want {
				t.Errorf("%s: %d, %v; want %d", c.host, code, err, c.want)
			}
		}
	}
	for _, n := range []string{"kumasi", "gone"} {
		if s := h.startTimes(n); len(s) != 0 {
			t.Errorf("%s was started %d times", n, len(s))
		}
	}
}

// TestIdleStopThenWakeThroughProxy: a tenant stops after its idle timeout
// and the next request wakes it.
func TestIdleStopThenWakeThroughProxy(t *testing.T) {
	t.Parallel()
	h, url := withProxy(t, func(c *Config) { c.IdleTimeout = time.Second })
	h.createTenant("accra")
	h.start()
	_, pid := h.waitInstance("accra", true, 0)
	ctx := context.Background()
	if code, _, err := fetch(ctx, url, "accra.school.localhost", "/tenant"); err != nil || code != 200 {
		t.Fatalf("accra: %d %v", code, err)
	}
	h.waitState("accra", StateIdle)
	waitFor(t, 20*time.Second, "the idle process to exit", func() bool { return !alive(pid) })
	code, body, err := fetch(ctx, url, "accra.school.localhost", "/pid")
	if err != nil || code != 200 || body == fmt.Sprint(pid) {
		t.Fatalf("after idle: %d %q %v; want 200 from a new process", code, body, err)
	}
	if s := h.startTimes("accra"); len(s) != 2 {
		t.Errorf("%d starts, want 2", len(s))
	}
}
