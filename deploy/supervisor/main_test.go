//go:build unix

package supervisor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// The test binary doubles as the supervised app and, for the Pdeathsig
// test, as a supervisor process of its own.
const (
	envChild      = "CAMPUS_SUPERVISOR_TEST_CHILD"      // "1": run childMain
	envSupervisor = "CAMPUS_SUPERVISOR_TEST_SUPERVISOR" // registry dir: run supervisorMain
	// Controls of the child.
	envExitAfter     = "CAMPUS_SUPERVISOR_TEST_EXIT_AFTER"     // duration: exit 3 after it; "0s" before listening
	envIgnoreTerm    = "CAMPUS_SUPERVISOR_TEST_IGNORE_TERM"    // "1": ignore SIGTERM
	envNeverReady    = "CAMPUS_SUPERVISOR_TEST_NEVER_READY"    // "1": /readyz always 503
	envUnhealthyFile = "CAMPUS_SUPERVISOR_TEST_UNHEALTHY_FILE" // /readyz 503 while this file exists
	envPool          = "CAMPUS_SUPERVISOR_TEST_POOL"           // "1": wait for an assignment on stdin (pool_test.go)
	envBusyFile      = "CAMPUS_SUPERVISOR_TEST_BUSY_FILE"      // /healthz and /readyz say busy (BusyHeader) while this file exists
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		if os.Getenv(envPool) == "1" {
			os.Exit(poolChildMain())
		}
		os.Exit(childMain(os.Args[1:]))
	}
	if dir := os.Getenv(envSupervisor); dir != "" {
		os.Exit(supervisorMain(dir))
	}
	os.Exit(m.Run())
}

// childMain is a tiny stand-in for `campus app`.
func childMain(args []string) int {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "")
	listen := fs.String("listen", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Getenv(envIgnoreTerm) == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	if s := os.Getenv(envExitAfter); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 2
		}
		if d == 0 {
			fmt.Fprintln(os.Stderr, "child", *tenant, "crashing at once")
			return 3
		}
		time.AfterFunc(d, func() { os.Exit(3) })
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child", *tenant, "listen:", err)
		return 1
	}
	mux := http.NewServeMux()
	var readyHits, healthyHits atomic.Int64
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		healthyHits.Add(1)
		if f := os.Getenv(envBusyFile); f != "" {
			if _, err := os.Stat(f); err == nil {
				w.Header().Set(BusyHeader, "1")
			}
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /hits", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %d", readyHits.Load(), healthyHits.Load())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		readyHits.Add(1)
		if f := os.Getenv(envBusyFile); f != "" {
			if _, err := os.Stat(f); err == nil {
				w.Header().Set(BusyHeader, "1")
			}
		}
		if os.Getenv(envNeverReady) == "1" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if f := os.Getenv(envUnhealthyFile); f != "" {
			if _, err := os.Stat(f); err == nil {
				http.Error(w, "unhealthy", http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /pid", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(os.Getpid()))
	})
	mux.HandleFunc("GET /tenant", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, *tenant)
	})
	var hog [][]byte // memory /hog holds on to (budget_test.go)
	var hogMu sync.Mutex
	mux.HandleFunc("GET /hog", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		hogMu.Lock()
		defer hogMu.Unlock()
		for range mb {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // touch every page: resident, not just reserved
			}
			hog = append(hog, b)
		}
		fmt.Fprintf(w, "holding %d MiB", len(hog))
	})
	fmt.Printf("child %s listening on %s\n", *tenant, ln.Addr())
	ctx := context.Background()
	if os.Getenv(envIgnoreTerm) != "1" { // Notify would undo Ignore
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 0
}

// supervisorMain runs a supervisor over the registry in dir until killed.
func supervisorMain(dir string) int {
	reg, err := embedded.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open registry:", err)
		return 1
	}
	defer reg.Close()
	s, err := New(Config{
		Registry:         reg,
		Command:          childCommand(nil),
		InstanceIDPrefix: "pd-",
		HealthInterval:   100 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childCommand re-executes the test binary as the app; env, if not nil,
// gives extra environment for a start.
func childCommand(env func(t registry.Tenant) []string) func(registry.Tenant, string) *exec.Cmd {
	return func(t registry.Tenant, listen string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "--tenant", t.Name, "--listen", listen)
		cmd.Env = append(os.Environ(), envChild+"=1")
		if env != nil {
			cmd.Env = append(cmd.Env, env(t)...)
		}
		return cmd
	}
}

// mode is how a test wants one tenant's children to behave.
type mode struct {
	crashFirst    int  // this many starts exit at once
	crashAlways   bool // every start exits at once
	ignoreTerm    bool
	neverReady    bool
	unhealthyFile string
	busyFile      string
}

// harness is one supervisor over a fresh embedded registry.
type harness struct {
	t    *testing.T
	reg  *embedded.Registry
	sup  *Supervisor
	prom *prometheus.Registry
	logs *syncBuffer
	out  *syncBuffer

	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	modes  map[string]mode
	starts map[string][]time.Time
}

const testPrefix = "test-"

// newHarness opens a registry; configure may change the Config before
// New. Start the supervisor with h.start.
func newHarness(t *testing.T, configure func(*Config)) *harness {
	t.Helper()
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	h := &harness{
		t:      t,
		reg:    reg,
		prom:   prometheus.NewRegistry(),
		logs:   &syncBuffer{},
		out:    &syncBuffer{},
		modes:  map[string]mode{},
		starts: map[string][]time.Time{},
	}
	cfg := Config{
		Registry:         reg,
		Command:          childCommand(h.env),
		InstanceIDPrefix: testPrefix,
		ReadyTimeout:     15 * time.Second,
		HealthInterval:   100 * time.Millisecond,
		// Readiness as often as liveness, so that tests see /readyz
		// changes at once (check_test.go tests the real split).
		ReadinessInterval: 100 * time.Millisecond,
		StopGrace:         5 * time.Second,
		BackoffMin:        200 * time.Millisecond,
		BackoffMax:        2 * time.Second,
		StableAfter:       time.Minute,
		Logger:            slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:        h.prom,
		Output:            h.out,
	}
	if configure != nil {
		configure(&cfg)
	}
	h.sup, err = New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", h.logs)
			t.Logf("children output:\n%s", h.out)
		}
	})
	return h
}

func (h *harness) setMode(tenant string, m mode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.modes[tenant] = m
}

// env records a start of t and returns the environment its mode asks for.
func (h *harness) env(t registry.Tenant) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts[t.Name] = append(h.starts[t.Name], time.Now())
	m := h.modes[t.Name]
	var env []string
	if m.crashAlways || len(h.starts[t.Name]) <= m.crashFirst {
		env = append(env, envExitAfter+"=0s")
	}
	if m.ignoreTerm {
		env = append(env, envIgnoreTerm+"=1")
	}
	if m.neverReady {
		env = append(env, envNeverReady+"=1")
	}
	if m.unhealthyFile != "" {
		env = append(env, envUnhealthyFile+"="+m.unhealthyFile)
	}
	if m.busyFile != "" {
		env = append(env, envBusyFile+"="+m.busyFile)
	}
	return env
}

func (h *harness) startTimes(tenant string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.starts[tenant]...)
}

// start runs the supervisor until the test ends (or h.stop).
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.sup.Run(ctx) }()
	h.t.Cleanup(func() { h.stop() })
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatalf("Run did not return after cancel")
	}
}

func (h *harness) createTenant(name string) registry.Tenant {
	h.t.Helper()
	t, err := registry.NewTenant(name, []string{name + ".school.localhost"}, "")
	if err != nil {
		h.t.Fatalf("NewTenant %s: %v", name, err)
	}
	t, err = h.reg.CreateTenant(context.Background(), t)
	if err != nil {
		h.t.Fatalf("CreateTenant %s: %v", name, err)
	}
	return t
}

func (h *harness) instances(tenant string) []registry.Instance {
	h.t.Helper()
	snap, err := h.reg.Snapshot(context.Background())
	if err != nil {
		h.t.Fatalf("Snapshot: %v", err)
	}
	var out []registry.Instance
	for _, in := range snap.Instances {
		if in.Tenant == tenant {
			out = append(out, in)
		}
	}
	return out
}

// waitInstance waits for exactly one instance of tenant with the given
// health whose process is not oldPID, and returns it with its pid.
func (h *harness) waitInstance(tenant string, healthy bool, oldPID int) (registry.Instance, int) {
	h.t.Helper()
	var in registry.Instance
	var pid int
	waitFor(h.t, 20*time.Second, fmt.Sprintf("one instance of %s with healthy=%v", tenant, healthy), func() bool {
		ins := h.instances(tenant)
		if len(ins) != 1 || ins[0].Healthy != healthy {
			return false
		}
		p, err := getPID(ins[0].Addr, tenant)
		if err != nil || p == oldPID {
			return false
		}
		in, pid = ins[0], p
		return true
	})
	return in, pid
}

func (h *harness) status(tenant string) (ChildStatus, bool) {
	for _, st := range h.sup.Status() {
		if st.Tenant == tenant {
			return st, true
		}
	}
	return ChildStatus{}, false
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches http://addr/path as the proxy would, with the tenant's host.
func get(addr, tenant, path string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	req.Host = tenant + ".school.localhost"
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

func getPID(addr, tenant string) (int, error) {
	s, err := get(addr, tenant, "/pid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// alive reports whether pid names a live process. A zombie (dead, not
// yet reaped, as orphans are here when PID 1 does not reap) counts as
// dead.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && !isLinux()
	}
	// Format: pid (comm) state ...; comm may contain spaces or ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func isLinux() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// syncBuffer is a goroutine-safe bytes.Buffer (the supervisor's log).
type syncBuffer struct{ systemtest.Buffer }

// logLines returns the decoded-enough log lines whose msg is msg.
func (b *syncBuffer) linesWith(substrs ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := true
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}
