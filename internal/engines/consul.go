package engines

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry/consul/consulhttp"
)

// ConsulOptions configures a dev agent.
type ConsulOptions struct {
	// ACL enables ACLs with default_policy "deny" and bootstraps them;
	// Consul.Token is then the bootstrap (management) token.
	ACL bool
	// Dir holds the agent's data and log; default a new temporary folder.
	Dir string
	// Persistent runs a single-node server that keeps its state in Dir
	// (-server -bootstrap-expect 1), with Consul's default limits, as an
	// operator's agent runs (limits.http_max_conns_per_client 200 among
	// them), instead of a -dev agent that keeps everything in memory:
	// Restart is then an outage after which the tenants, services and
	// tokens are still there.
	Persistent bool
	// HCL is more agent configuration, e.g. lower limits for a test.
	HCL string
}

// Consul is a running dev-mode Consul agent on loopback, or an external
// agent named by CONSUL_HTTP_ADDR (see ConsulForTest).
type Consul struct {
	// Addr is the HTTP API address, host:port.
	Addr string
	// Token is the management token (empty without ACLs).
	Token string

	opts    ConsulOptions
	ports   []int // http, server, serf-lan, serf-wan
	mu      sync.Mutex
	proc    *systemtest.Process // nil for an external agent
	clients map[string]*consulhttp.Client
}

// StartConsul starts a dev agent on free loopback ports and waits until it
// has a leader (and, with ACLs, a bootstrapped management token).
func StartConsul(ctx context.Context, opts ConsulOptions) (*Consul, error) {
	bin, err := Binary("consul")
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "campus-consul-"); err != nil {
			return nil, fmt.Errorf("consul: data folder: %w", err)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("consul: data folder: %w", err)
	}
	c := &Consul{opts: opts}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if c.ports, err = systemtest.FreePorts(4); err != nil {
			return nil, err
		}
		if lastErr = c.start(ctx, bin); lastErr == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (c *Consul) start(ctx context.Context, bin string) error {
	c.Addr = "127.0.0.1:" + strconv.Itoa(c.ports[0])
	mode := []string{"-dev"}
	if c.opts.Persistent {
		mode = []string{"-server", "-bootstrap-expect", "1", "-data-dir", filepath.Join(c.opts.Dir, "data"), "-ui=false"}
	}
	args := append([]string{"agent"}, mode...)
	args = append(args, "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(c.ports[0]), "-server-port", strconv.Itoa(c.ports[1]),
		"-serf-lan-port", strconv.Itoa(c.ports[2]), "-serf-wan-port", strconv.Itoa(c.ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-log-level", "warn", "-disable-host-node-id",
	)
	if c.opts.ACL {
		args = append(args, "-hcl", `acl { enabled = true default_policy = "deny" enable_token_persistence = false }`)
	}
	if c.opts.HCL != "" {
		args = append(args, "-hcl", c.opts.HCL)
	}
	p, err := startProcess(bin, args, c.opts.Dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	bounded, err := consulhttp.NewClient(&api.Config{Address: c.Addr}, consulhttp.Options{})
	if err != nil {
		p.Stop()
		return fmt.Errorf("consul: client: %w", err)
	}
	defer bounded.CloseIdle()
	client := bounded.Client
	err = p.WaitUntil(ctx, "consul agent on "+c.Addr, func(ctx context.Context) error {
		leader, err := client.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
	if err == nil && c.opts.ACL && c.Token == "" {
		err = p.WaitUntil(ctx, "consul acl bootstrap on "+c.Addr, func(ctx context.Context) error {
			tok, _, err := client.ACL().Bootstrap()
			if err != nil {
				return err
			}
			c.Token = tok.SecretID
			return nil
		})
	}
	if err == nil && c.opts.ACL {
		// The agent's own token, with which it syncs its node and its
		// services' deregistrations to the catalog (acl.tokens.agent in
		// production; there a token with node write, here the
		// management token).
		err = p.WaitUntil(ctx, "consul agent token on "+c.Addr, func(ctx context.Context) error {
			_, err := client.Agent().UpdateAgentACLToken(c.Token, &api.WriteOptions{Token: c.Token})
			return err
		})
	}
	if err != nil {
		p.Stop()
		return err
	}
	c.mu.Lock()
	c.proc = p
	c.mu.Unlock()
	return nil
}

// Client returns an API client for the agent with the given token ("" is
// anonymous), bounded and polite as Campus's own (consulhttp): one per
// token, so that tests calling it often do not pile up connections
// against the agent's limit.
func (c *Consul) Client(token string) *api.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if client, ok := c.clients[token]; ok {
		return client.Client
	}
	client, err := consulhttp.NewClient(c.Config(token), consulhttp.Options{})
	if err != nil {
		panic(fmt.Sprintf("consul client for %s: %v", c.Addr, err)) // only a malformed address fails
	}
	if c.clients == nil {
		c.clients = map[string]*consulhttp.Client{}
	}
	c.clients[token] = client
	return client.Client
}

// Config returns an API configuration for the agent with the given token.
func (c *Consul) Config(token string) *api.Config {
	return &api.Config{Address: c.Addr, Token: token}
}

// Stop stops the agent. A dev agent keeps everything in memory, so its
// state is gone.
func (c *Consul) Stop() {
	c.mu.Lock()
	p := c.proc
	c.proc = nil
	for _, client := range c.clients {
		client.CloseIdle()
	}
	c.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// Kill ends the agent with SIGKILL: a crash, with no graceful leave (a
// leave marks the node, and so every service on it, critical).
func (c *Consul) Kill() {
	c.mu.Lock()
	p := c.proc
	c.proc = nil
	c.mu.Unlock()
	if p != nil {
		p.StopWith(os.Kill, time.Minute)
	}
}

// Restart stops the agent and starts it again on the same ports: an outage.
// A dev agent comes back empty, every KV and catalog entry gone and Consul's
// raft index starting again from the beginning (it goes backwards for a
// watcher); a Persistent one comes back with its state.
// With ACLs, Token is the new management token (a Persistent agent keeps
// the one it had).
func (c *Consul) Restart(ctx context.Context) error {
	if c.proc == nil && c.ports == nil {
		return errors.New("consul: cannot restart an external agent")
	}
	c.Stop()
	if !c.opts.Persistent {
		c.Token = "" // a new dev agent is bootstrapped anew
	}
	bin, err := Binary("consul")
	if err != nil {
		return err
	}
	// The ports were just released; another process may take one, so try
	// a few times before giving up.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if lastErr = c.start(ctx, bin); lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-time.After(500 * time.Millisecond):
		}
	}
	return lastErr
}

// Log returns what the agent has written so far.
func (c *Consul) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return ""
	}
	return c.proc.Output()
}

// ConsulForTest returns a dev agent for one test, stopped at its end; with
// CONSUL_HTTP_ADDR set (and opts.ACL false), the agent it names, with
// CONSUL_HTTP_TOKEN as Token. A test that shares an agent must use key
// prefixes and service names of its own.
func ConsulForTest(tb TB, opts ConsulOptions) *Consul {
	tb.Helper()
	if addr := os.Getenv("CONSUL_HTTP_ADDR"); addr != "" && !opts.ACL {
		return &Consul{Addr: strings.TrimPrefix(addr, "http://"), Token: os.Getenv("CONSUL_HTTP_TOKEN")}
	}
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	c, err := StartConsul(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start a real Consul agent: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// Shared is one agent per test binary, started on first use (with ACLs
// when the first caller asks for them) and stopped by StopShared, which a
// TestMain calls after m.Run. Tests on it must use key prefixes and service
// names of their own.
type Shared struct {
	Options ConsulOptions
	once    sync.Once
	c       *Consul
	err     error
}

// Get returns the shared agent, starting it on first use.
func (s *Shared) Get(tb TB) *Consul {
	tb.Helper()
	s.once.Do(func() {
		if addr := os.Getenv("CONSUL_HTTP_ADDR"); addr != "" && !s.Options.ACL {
			s.c = &Consul{Addr: strings.TrimPrefix(addr, "http://"), Token: os.Getenv("CONSUL_HTTP_TOKEN")}
			return
		}
		s.c, s.err = StartConsul(context.Background(), s.Options)
	})
	if s.err != nil {
		tb.Fatalf("start a real Consul agent: %v", s.err)
	}
	return s.c
}

// Stop stops the shared agent if it was started.
func (s *Shared) Stop() {
	if s.c != nil {
		s.c.Stop()
		if s.Options.Dir == "" && s.c.opts.Dir != "" {
			os.RemoveAll(s.c.opts.Dir)
		}
	}
}

// Relay is a TCP relay in front of a server that can be told to hang: while
// hung it accepts connections and passes no bytes either way, the way a
// half-dead load balancer or a stuck agent looks to a client. It is how
// tests produce a blocking query that never returns, which a healthy real
// server never does.
type Relay struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	hung  bool
	wake  chan struct{} // closed when hung turns false
	conns map[net.Conn]bool
}

// NewRelay relays a new loopback port to target until the test ends.
func NewRelay(tb TB, target string) *Relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("relay: %v", err)
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln, wake: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(r.wake)
	go r.serve()
	tb.Cleanup(r.close)
	return r
}

// Hang stops (true) or resumes (false) every byte through the relay.
func (r *Relay) Hang(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on == r.hung {
		return
	}
	r.hung = on
	if on {
		r.wake = make(chan struct{})
	} else {
		close(r.wake)
	}
}

func (r *Relay) gate() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wake
}

func (r *Relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c)
	}
}

func (r *Relay) track(c net.Conn, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	if on {
		r.conns[c] = true
	} else {
		delete(r.conns, c)
	}
	return true
}

func (r *Relay) relay(client net.Conn) {
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	if !r.track(client, true) || !r.track(server, true) {
		client.Close()
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				<-r.gate() // hold the bytes while hung
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	client.Close()
	server.Close()
	<-done
	r.track(client, false)
	r.track(server, false)
}

func (r *Relay) close() {
	r.ln.Close()
	r.Hang(false)
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}
