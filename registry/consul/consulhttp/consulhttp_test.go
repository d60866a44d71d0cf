package consulhttp_test

import (
	"context"
	"errors"
	"io"
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
	// hold opens idle connections until the agent has accepted as many as
	// its limit, 3. An accepted one stays silent, waiting for a request;
	// one over the limit gets a 429 at once (connections closed a moment
	// ago may still count): that one is closed and tried again.
	hold := func(t *testing.T) func() {
		t.Helper()
		var conns []net.Conn
		release := func() {
			for _, c := range conns {
				c.Close()
			}
		}
		for deadline := time.Now().Add(30 * time.Second); len(conns) < 3; {
			if time.Now().After(deadline) {
				release()
				t.Fatalf("the agent accepted %d idle connections in 30s, want 3", len(conns))
			}
			c, err := net.Dial("tcp", agent.Addr)
			if err != nil {
				release()
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			b := make([]byte, 12)
			if n, _ := io.ReadFull(c, b); n > 0 {
				c.Close()
				if !strings.Contains(string(b[:n]), "429") {
					release()
					t.Fatalf("the agent answered %q on an idle connection, want a 429 once over its limit", b[:n])
				}
				time.Sleep(50 * time.Millisecond) // polling: the older connections leave
				continue
			}
			conns = append(conns, c)
		}
		return release
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
