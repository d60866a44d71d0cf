package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/registrytest"
)

// The test binary doubles as a second campus process: with childEnv set it
// runs child() instead of the tests.
const childEnv = "CAMPUS_EMBEDDED_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childResult is what a child reports on stdout, as JSON.
type childResult struct {
	Created     bool   `json:"created"`
	Owner       string `json:"owner,omitempty"` // when the host was taken
	CommittedNS int64  `json:"committed_ns"`
	Err         string `json:"err,omitempty"`
}

// child opens the registry in $DIR, waits for a line on stdin (so that the
// parent can start several at once), creates tenant $NAME with host $HOST
// and reports.
func child() error {
	r, err := Open(os.Getenv("DIR"))
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for go: %w", err)
	}
	name := os.Getenv("NAME")
	var res childResult
	tn, err := registry.NewTenant(name, []string{os.Getenv("HOST"), name + ".child.localhost"}, "")
	if err == nil {
		_, err = r.CreateTenant(context.Background(), tn)
	}
	res.CommittedNS = time.Now().UnixNano()
	var ht *registry.HostTakenError
	switch {
	case err == nil:
		res.Created = true
	case errors.As(err, &ht):
		res.Owner = ht.Owner
	default:
		res.Err = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// startChild starts a child process and waits until it has opened the
// registry. Writing a line to the returned writer lets it create.
type childProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, dir, name, host string) *childProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "DIR="+dir, "NAME="+name, "HOST="+host)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	c := &childProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := c.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child %s did not get ready: %q, %v", name, line, err)
	}
	return c
}

func (c *childProc) goAhead(t *testing.T) {
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *childProc) result(t *testing.T) childResult {
	t.Helper()
	var res childResult
	if err := json.NewDecoder(c.out).Decode(&res); err != nil {
		t.Fatalf("child result: %v", err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if res.Err != "" {
		t.Fatalf("child: %s", res.Err)
	}
	return res
}

func open(t testing.TB, dir string, opts ...Option) *Registry {
	t.Helper()
	r, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func TestContract(t *testing.T) {
	registrytest.Run(t, registrytest.Harness{
		New: func(t *testing.T) registry.Registry { return open(t, t.TempDir()) },
		Second: func(t *testing.T, first registry.Registry) registry.Registry {
			return open(t, filepath.Dir(first.(*Registry).Path()))
		},
	})
}

func TestContractSharedDir(t *testing.T) {
	// Every subtest on the same file, as on a long-lived machine: the suite
	// must not depend on an empty registry.
	dir := t.TempDir()
	registrytest.Run(t, registrytest.Harness{
		New: func(t *testing.T) registry.Registry { return open(t, dir) },
		Second: func(t *testing.T, first registry.Registry) registry.Registry {
			return open(t, dir)
		},
	})
}

func TestCrossProcessWatch(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	snap, err := r.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, dir, "fromchild", "fromchild.school.localhost")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type woke struct {
		snap registry.Snapshot
		err  error
		at   time.Time
	}
	ch := make(chan woke, 1)
	go func() {
		s, err := r.Watch(ctx, snap.Version)
		ch <- woke{s, err, time.Now()}
	}()
	select {
	case w := <-ch:
		t.Fatalf("Watch returned before the child wrote: %+v, %v", w.snap, w.err)
	case <-time.After(100 * time.Millisecond):
	}

	c.goAhead(t)
	res := c.result(t)
	if !res.Created {
		t.Fatalf("child did not create its tenant: %+v", res)
	}
	w := <-ch
	if w.err != nil {
		t.Fatalf("Watch: %v", w.err)
	}
	latency := w.at.Sub(time.Unix(0, res.CommittedNS))
	t.Logf("watch in the parent woke %v after the child's commit (poll interval %v)", latency, DefaultPollInterval)
	var found bool
	for _, tn := range w.snap.Tenants {
		found = found || tn.Name == "fromchild"
	}
	if !found {
		t.Fatalf("woken snapshot (version %d) lacks the child's tenant: %+v", w.snap.Version, w.snap.Tenants)
	}
}

func TestCrossProcessHostRace(t *testing.T) {
	dir := t.TempDir()
	open(t, dir) // create the file before the children race to
	const n = 4
	const contested = "contested.school.localhost"
	children := make([]*childProc, n)
	for i := range children {
		children[i] = startChild(t, dir, fmt.Sprintf("racer%d", i), contested)
	}
	for _, c := range children {
		c.goAhead(t)
	}
	var winners []string
	results := make([]childResult, n)
	for i, c := range children {
		results[i] = c.result(t)
		if results[i].Created {
			winners = append(winners, fmt.Sprintf("racer%d", i))
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d processes claimed %s (%v); want exactly 1", len(winners), contested, winners)
	}
	for i, res := range results {
		if !res.Created && res.Owner != winners[0] {
			t.Errorf("racer%d: lost to %q, want %q", i, res.Owner, winners[0])
		}
	}
	tn, err := open(t, dir).Tenant(context.Background(), winners[0])
	if err != nil || tn.PrimaryHost != contested {
		t.Fatalf("winner %s: %+v, %v", winners[0], tn, err)
	}
}

func TestOpenPermissionsAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := registry.NewTenant("nairobi", []string{"nairobi.school.localhost"}, "")
	if err != nil {
		t.Fatal(err)
	}
	created, err := r.CreateTenant(context.Background(), tn)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	r2 := open(t, dir)
	got, err := r2.Tenant(context.Background(), "nairobi")
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if got.Name != created.Name || !got.CreatedAt.Equal(created.CreatedAt) || got.PrimaryHost != created.PrimaryHost {
		t.Fatalf("after reopen: %+v, want %+v", got, created)
	}
	snap2, err := r2.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Version != snap.Version {
		t.Fatalf("version after reopen = %d, want %d", snap2.Version, snap.Version)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	if _, err := r.wdb.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	if r2, err := Open(dir); err == nil {
		r2.Close()
		t.Fatal("Open of a file with a newer schema succeeded")
	}
}

func TestNoOpWritesDoNotBumpVersion(t *testing.T) {
	ctx := context.Background()
	r := open(t, t.TempDir())
	tn, _ := registry.NewTenant("accra", []string{"accra.school.localhost"}, "")
	if _, err := r.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	in := registry.Instance{ID: "dev-accra-1", Tenant: "accra", Addr: "127.0.0.1:9000", Healthy: true}
	if err := r.RegisterInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	before, _ := r.Snapshot(ctx)
	steps := map[string]func() error{
		"identical register": func() error { return r.RegisterInstance(ctx, in) },
		"same state":         func() error { _, err := r.SetState(ctx, "accra", registry.StateActive); return err },
		"unknown deregister": func() error { return r.DeregisterInstance(ctx, "nope") },
	}
	for name, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		after, _ := r.Snapshot(ctx)
		if after.Version != before.Version {
			t.Errorf("%s moved the version from %d to %d", name, before.Version, after.Version)
		}
	}
	// A real change does.
	in.Healthy = false
	if err := r.RegisterInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	after, _ := r.Snapshot(ctx)
	if after.Version != before.Version+1 || after.Instances[0].Healthy {
		t.Fatalf("health change: version %d -> %d, instances %+v", before.Version, after.Version, after.Instances)
	}
}

func TestRegisterInstanceValidates(t *testing.T) {
	r := open(t, t.TempDir())
	for _, in := range []registry.Instance{
		{ID: "", Tenant: "accra", Addr: "127.0.0.1:1"},
		{ID: "has space", Tenant: "accra", Addr: "127.0.0.1:1"},
		{ID: "x", Tenant: "Accra", Addr: "127.0.0.1:1"},
		{ID: "x", Tenant: "accra", Addr: "127.0.0.1"},
		{ID: "x", Tenant: "accra", Addr: ":80"},
		{ID: "x", Tenant: "accra", Addr: "127.0.0.1:0"},
		{ID: "x", Tenant: "accra", Addr: "127.0.0.1:http"},
	} {
		if err := r.RegisterInstance(context.Background(), in); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("RegisterInstance(%+v) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestCloseEndsWatch(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := r.Watch(context.Background(), snap.Version)
		errc <- err
	}()
	// Wait until the watcher runs the poller, then close under it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.mu.Lock()
		polling := r.polling
		r.mu.Unlock()
		if polling {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the poller did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Watch returned no error after Close")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Watch still blocked after Close")
	}
	if _, err := r.Watch(context.Background(), snap.Version); err == nil {
		t.Fatal("Watch after Close succeeded")
	}
	if err := r.RegisterInstance(context.Background(), registry.Instance{ID: "x", Tenant: "accra", Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestPollerStopsWhenIdle(t *testing.T) {
	r := open(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	snap, _ := r.Snapshot(context.Background())
	if _, err := r.Watch(ctx, snap.Version); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch = %v", err)
	}
	deadline := time.Now().Add(pollerLinger + 60*time.Second)
	for {
		r.mu.Lock()
		polling := r.polling
		r.mu.Unlock()
		if !polling {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("poller still running with nobody watching")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And it starts again for the next watcher: a write by another handle
	// wakes it.
	other := open(t, filepath.Dir(r.Path()))
	var wg sync.WaitGroup
	wg.Add(1)
	var got registry.Snapshot
	var werr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got, werr = r.Watch(ctx, snap.Version)
	}()
	if err := other.RegisterInstance(context.Background(), registry.Instance{ID: "x", Tenant: "accra", Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if werr != nil || got.Version <= snap.Version {
		t.Fatalf("Watch after restart = %d, %v", got.Version, werr)
	}
}
