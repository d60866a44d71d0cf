package main

// End-to-end tests of the Consul registry with the real binaries: `campus
// tenant`, `campus token`, `campus app` (self-registering with its tenant's
// token) and `campus proxy` (read-only token, state file) against a real
// Consul server with ACLs (default deny) that keeps its state on disk, so
// that it can be stopped and started again on the same address.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/mongotest"
	"github.com/campus-saas/campus/internal/systemtest"
)

// consulSystem is a Consul server, a MongoDB and the processes started
// against them.
type consulSystem struct {
	t      *testing.T
	consul *engines.Consul
	env    []string // the operator's: CONSUL_HTTP_TOKEN is the management token
	dir    string
}

func newConsulSystem(t *testing.T) *consulSystem {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := engines.StartConsul(ctx, engines.ConsulOptions{ACL: true, Persistent: true, Dir: filepath.Join(dir, "consul")})
	if err != nil {
		t.Fatalf("start a real Consul server: %v", err)
	}
	t.Cleanup(srv.Stop)
	return &consulSystem{
		t:      t,
		consul: srv,
		dir:    dir,
		env: append(systemtest.CleanEnv(),
			"CONSUL_HTTP_ADDR="+srv.Addr,
			"CONSUL_HTTP_TOKEN="+srv.Token,
			"MONGODB_URI="+mongotest.URI(t),
			"CAMPUS_CONSUL_PREFIX=e2e-"+filepath.Base(dir)+"/",
			"CAMPUS_CONSUL_CHECK_INTERVAL=200ms",
			"CAMPUS_LOG_FORMAT=json",
		),
	}
}

// token runs a `campus token` command and returns the token it printed.
func (s *consulSystem) token(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(campusBin, append([]string{"token"}, args...)...)
	cmd.Env = s.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("campus token %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// withToken is the environment of the system with another Consul token.
func (s *consulSystem) withToken(token string) []string {
	env := []string{"CONSUL_HTTP_TOKEN=" + token}
	for _, kv := range s.env {
		if !strings.HasPrefix(kv, "CONSUL_HTTP_TOKEN=") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *consulSystem) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(campusBin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("campus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *consulSystem) start(args ...string) *systemtest.Process {
	s.t.Helper()
	return s.startWith(s.env, args...)
}

// startWith runs a long-running campus command with env until the test
// ends (SIGKILL: a crash, no graceful leave), logging its output when the
// test failed.
func (s *consulSystem) startWith(env []string, args ...string) *systemtest.Process {
	s.t.Helper()
	return systemtest.StartForTest(s.t, "campus "+strings.Join(args, " "), append([]string{campusBin}, args...),
		systemtest.Options{Env: env, StopSignal: syscall.SIGKILL, StopTimeout: 20 * time.Second})
}

// status GETs / at host through the proxy at addr.
func status(addr, host string) int {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, addr, host string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	got := 0
	if systemtest.Eventually(within, func() error {
		if got = status(addr, host); got != want {
			return errors.New("not yet")
		}
		return nil
	}) != nil {
		t.Fatalf("%s via %s: want %d within %s, last %d", host, addr, want, within, got)
	}
	return time.Since(start)
}

func TestConsulEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test starts several processes; skipped with -short")
	}
	s := newConsulSystem(t)
	proxyAddr := "127.0.0.1:" + freePort(t)
	stateFile := filepath.Join(s.dir, "proxy-state.json")
	adminAddr := "127.0.0.1:" + freePort(t)
	routes := func() string {
		resp, err := http.Get("http://" + adminAddr + "/routes")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	proxyArgs := []string{"proxy", "--listen", proxyAddr, "--admin-listen", adminAddr,
		"--state-file", stateFile, "--hold-timeout", "1s"}
	proxyEnv := s.withToken(s.token("proxy"))
	proxy := s.startWith(proxyEnv, proxyArgs...)

	s.run("tenant", "create", "lagos", "--host", "lagos.school.localhost")
	s.run("tenant", "create", "accra", "--host", "accra.school.localhost")
	lagosEnv := s.withToken(s.token("tenant", "lagos"))
	if out := s.run("tenant", "list"); !strings.Contains(out, "lagos.school.localhost") {
		t.Fatalf("tenant list lacks lagos:\n%s", out)
	}
	// The tenant exists but nothing serves it yet.
	waitStatus(t, proxyAddr, "lagos.school.localhost", http.StatusServiceUnavailable, 60*time.Second)

	appAddr := "127.0.0.1:" + freePort(t)
	app := s.startWith(lagosEnv, "app", "--tenant", "lagos", "--listen", appAddr)
	took := waitStatus(t, proxyAddr, "lagos.school.localhost", 200, 60*time.Second)
	t.Logf("lagos routable %s after `campus app` started (registration + first passing check)", took.Round(time.Millisecond))

	t.Run("lagos's token cannot serve accra", func(t *testing.T) {
		// An app for accra started with lagos's token: Consul refuses its
		// registration, so accra's host is never routed to it.
		evil := s.startWith(lagosEnv, "app", "--tenant", "accra", "--listen", "127.0.0.1:"+freePort(t))
		if systemtest.Eventually(60*time.Second, func() error {
			if !strings.Contains(evil.Output(), "Permission denied") {
				return errors.New("not refused yet")
			}
			return nil
		}) != nil {
			t.Fatalf("no refused registration in the accra app's log:\n%s", evil.Output())
		}
		for range 10 {
			if got := status(proxyAddr, "accra.school.localhost"); got != http.StatusServiceUnavailable {
				t.Fatalf("accra.school.localhost with only a lagos-token app for it: %d, want 503 (no instance)", got)
			}
		}
		evil.StopWith(syscall.SIGTERM, 20*time.Second)
	})

	t.Run("stopping the app removes it", func(t *testing.T) {
		app.StopWith(syscall.SIGTERM, 20*time.Second)
		waitStatus(t, proxyAddr, "lagos.school.localhost", http.StatusServiceUnavailable, 60*time.Second)
		// A new process on a new address, as a new container would get.
		app = s.startWith(lagosEnv, "app", "--tenant", "lagos", "--listen", "127.0.0.1:"+freePort(t))
		waitStatus(t, proxyAddr, "lagos.school.localhost", 200, 60*time.Second)
	})

	t.Run("Consul crashed: traffic still routed from the last table", func(t *testing.T) {
		// Crash Consul only once the proxy's table has held a healthy
		// lagos instance for a while: a crash at any moment freezes the
		// table as it was, flaps included.
		stableSince := time.Time{}
		deadline := time.Now().Add(30 * time.Second)
		for stableSince.IsZero() || time.Since(stableSince) < time.Second {
			if time.Now().After(deadline) {
				t.Fatalf("lagos never stayed healthy in the proxy's table:\n%s", routes())
			}
			if strings.Contains(routes(), `"healthy": true`) {
				if stableSince.IsZero() {
					stableSince = time.Now()
				}
			} else {
				stableSince = time.Time{}
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.consul.Kill()
		for range 20 {
			if got := status(proxyAddr, "lagos.school.localhost"); got != 200 {
				t.Fatalf("with Consul down: %d, want 200", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("proxy restarted while Consul is down routes from the state file", func(t *testing.T) {
		if _, err := os.Stat(stateFile); err != nil {
			t.Fatalf("no state file: %v", err)
		}
		proxy.StopWith(syscall.SIGTERM, 20*time.Second)
		proxy = s.startWith(proxyEnv, proxyArgs...)
		waitStatus(t, proxyAddr, "lagos.school.localhost", 200, 60*time.Second)
		if got := status(proxyAddr, "unknown.school.localhost"); got != http.StatusNotFound {
			t.Fatalf("unknown host from the state file: %d, want 404", got)
		}
	})

	t.Run("Consul back: a new tenant becomes routable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.consul.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		s.run("tenant", "create", "ibadan", "--host", "ibadan.school.localhost")
		s.startWith(s.withToken(s.token("tenant", "ibadan")),
			"app", "--tenant", "ibadan", "--listen", "127.0.0.1:"+freePort(t))
		took := waitStatus(t, proxyAddr, "ibadan.school.localhost", 200, 60*time.Second)
		t.Logf("ibadan routable %s after its app started, Consul having come back", took.Round(time.Millisecond))
		if got := status(proxyAddr, "lagos.school.localhost"); got != 200 {
			t.Fatalf("lagos after Consul came back: %d", got)
		}
	})
	t.Run("deleting a tenant revokes its token; its app is no longer routed", func(t *testing.T) {
		ibadanToken := s.token("tenant", "ibadan")
		s.run("tenant", "delete", "ibadan")
		waitStatus(t, proxyAddr, "ibadan.school.localhost", http.StatusNotFound, 60*time.Second)
		c := s.consul.Client(ibadanToken)
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "ibadan-again", Name: "campus-app-ibadan", Address: "127.0.0.1", Port: 9})
		if err == nil {
			t.Fatal("a deleted tenant's token still registers its service")
		}
		// Restored, it gets a new token; the old one stays dead.
		s.run("tenant", "restore", "ibadan")
		if fresh := s.token("tenant", "ibadan"); fresh == ibadanToken {
			t.Fatal("restore handed back the revoked token")
		}
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "ibadan-again", Name: "campus-app-ibadan", Address: "127.0.0.1", Port: 9}); err == nil {
			t.Fatal("the revoked token registers again after restore")
		}
	})
}
