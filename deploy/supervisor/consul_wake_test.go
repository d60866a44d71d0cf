//go:build unix

package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
)

// TestWakeThroughConsulFromAnotherMachine: a proxy that has only a Consul
// connection (the proxy token: it reads the registry and writes wake
// requests, nothing else) wakes an idle tenant whose supervisor runs
// elsewhere (another Consul handle with the operator's token), on a real
// agent with ACLs.
func TestWakeThroughConsulFromAnotherMachine(t *testing.T) {
	t.Parallel()
	agent := engines.ConsulForTest(t, engines.ConsulOptions{ACL: true})
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + "/"
	open := func(token string) *consul.Registry {
		r, err := consul.New(consul.Config{API: agent.Config(token), Prefix: prefix, CheckInterval: time.Second,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	op := open(agent.Token)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range []string{"accra", "kumasi"} {
		tn, err := registry.NewTenant(n, []string{n + ".school.localhost"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.SetState(ctx, "kumasi", registry.StateSuspended); err != nil {
		t.Fatal(err)
	}
	proxyToken, err := op.ProxyToken(ctx, "campus-proxy", true, "")
	if err != nil {
		t.Fatal(err)
	}

	// The supervisor's machine.
	h := newHarness(t, func(c *Config) {
		c.Registry = op
		c.IdleTimeout = time.Hour
		c.Activity = newActivity()
		c.StartIdle = true
		c.WakeSource = op
	})
	h.start()
	h.waitState("accra", StateIdle)

	// The proxy's machine: only Consul, with the proxy's token.
	pr := open(proxyToken)
	p, err := proxy.New(proxy.Config{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		HoldTimeout: time.Minute, Waker: proxy.RegistryWaker{Registry: pr}})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(pctx, pr) }()
	t.Cleanup(func() { pcancel(); <-done })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	code, body, err := fetch(ctx, front.URL, "accra.school.localhost", "/tenant")
	if err != nil || code != http.StatusOK || body != "accra" {
		t.Fatalf("accra through the remote proxy: %d %q %v; want 200 from accra", code, body, err)
	}
	if n := len(h.startTimes("accra")); n != 1 {
		t.Errorf("accra started %d times, want once", n)
	}
	// The suspended tenant: its maintenance page, and no start.
	code, _, err = fetch(ctx, front.URL, "kumasi.school.localhost", "/tenant")
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("suspended kumasi: %d %v, want 503", code, err)
	}
	// A wake written for it anyway (as any proxy may) starts nothing.
	if err := pr.RequestWake(ctx, "kumasi"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := len(h.startTimes("kumasi")); n != 0 {
		t.Errorf("a wake request started suspended kumasi %d times", n)
	}
}
