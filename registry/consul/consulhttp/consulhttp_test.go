package consulhttp_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/registry/consul/consulhttp"
)

// A real agent whose limit of connections per client address is 3: the
// test holds them all with idle TCP connections, as other processes on the
// machine would, and the agent answers anything more with 429.
func TestRetriesWhileTheAgentRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	agent, err := engines.StartConsul(ctx, engines.ConsulOptions{Dir: t.TempDir(), HCL: `limits { http_max_conns_per_client = 3 }`})
	if err != nil {
		t.Fatalf("start a real Consul agent: %v", err)
	}
	defer agent.Stop()
	hold := func(t *testing.T) func() {
		t.Helper()
		var conns []net.Conn
		for range 3 {
			c, err := net.Dial("tcp", agent.Addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		return func() {
			for _, c := range conns {
				c.Close()
			}
		}
	}
	client := func(t *testing.T, attempts int, log *slog.Logger) *api.Client {
		t.Helper()
		c, err := consulhttp.NewClient(agent.Config(""), consulhttp.Options{Attempts: attempts, RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdle)
		return c.Client
	}
	put := func(c *api.Client, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte("v")}, (&api.WriteOptions{}).WithContext(ctx))
		return err
	}

	t.Run("gives up after the attempts, with backoff, saying what happened", func(t *testing.T) {
		release := hold(t)
		defer release()
		start := time.Now()
		err := put(client(t, 3, nil), "consulhttp/refused")
		elapsed := time.Since(start)
		var oe *consulhttp.OverloadError
		if !errors.As(err, &oe) {
			t.Fatalf("Put while the agent refuses = %v, want an OverloadError", err)
		}
		if oe.Status != 429 || oe.Attempts != 3 || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "3 times") {
			t.Errorf("error = %q (%+v), want the 429 and the 3 attempts", err, oe)
		}
		// Two waits in between, at least 25 and 50 ms with jitter: never
		// a tight retry.
		if elapsed < 75*time.Millisecond {
			t.Errorf("3 attempts in %v: no backoff between them", elapsed)
		}
	})

	t.Run("a write goes through once the agent takes it again", func(t *testing.T) {
		release := hold(t)
		refused := &signal{ch: make(chan struct{})}
		c := client(t, 8, slog.New(slog.NewTextHandler(refused, nil)))
		done := make(chan error, 1)
		go func() { done <- put(c, "consulhttp/retried") }()
		select {
		case <-refused.ch: // the agent refused it once: free the connections
		case err := <-done:
			t.Fatalf("Put while the agent refuses returned %v before any retry", err)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("Put after the agent freed its connections = %v, want it retried until it went through", err)
		}
		p, _, err := c.KV().Get("consulhttp/retried", nil)
		if err != nil || p == nil || string(p.Value) != "v" {
			t.Fatalf("Get after the retried Put = %+v, %v", p, err)
		}
	})
}

// signal is a log destination that closes ch at the first record.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func (s *signal) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.ch) })
	return len(p), nil
}
