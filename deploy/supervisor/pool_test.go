//go:build unix

package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/campus-saas/campus/registry"
)

// assignment is what the test's pool children read from stdin.
type assignment struct {
	Args []string `json:"args"`
}

// poolChildMain waits, holding no tenant, for one assignment line, then
// runs as the child it names.
func poolChildMain() int {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "pool child: read assignment:", err)
		return 4
	}
	var a assignment
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		fmt.Fprintln(os.Stderr, "pool child: bad assignment:", err)
		return 4
	}
	return childMain(a.Args)
}

// TestPoolProcessServesOneTenantForLife: a pre-started process holds no
// tenant until it is bound; bound to accra it serves accra only, and when
// accra's child ends it dies with it; lagos gets another process.
func TestPoolProcessServesOneTenantForLife(t *testing.T) {
	t.Parallel()
	act := newActivity()
	var (
		mu   sync.Mutex
		cmds []*exec.Cmd
	)
	h := newHarness(t, func(c *Config) {
		c.IdleTimeout = time.Second
		c.Activity = act
		c.StartIdle = true
		c.Pool = PoolConfig{
			Size: 1,
			Command: func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "pool")
				cmd.Env = ChildEnv(nil, envChild+"=1", envPool+"=1")
				mu.Lock()
				cmds = append(cmds, cmd)
				mu.Unlock()
				return cmd
			},
			Assignment: func(tn registry.Tenant, listen string) ([]byte, error) {
				return json.Marshal(assignment{Args: []string{"--tenant", tn.Name, "--listen", listen}})
			},
		}
	})
	pooled := func(i int) int {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("pool process %d ready", i+1), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(cmds) > i && testutil.ToFloat64(h.sup.met.poolReady) == 1
		})
		mu.Lock()
		defer mu.Unlock()
		return cmds[i].Process.Pid
	}
	h.createTenant("accra")
	h.createTenant("lagos")
	h.start()
	h.waitState("accra", StateIdle)
	h.waitState("lagos", StateIdle)

	p1 := pooled(0)
	for _, f := range []string{"environ", "cmdline"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p1, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"accra", "lagos"} {
			if strings.Contains(string(b), n) {
				t.Errorf("the unbound pool process's %s names %s: %q", f, n, b)
			}
		}
	}

	h.sup.Wake(context.Background(), "accra")
	_, pid := h.waitInstance("accra", true, 0)
	if pid != p1 {
		t.Fatalf("accra served by pid %d, want the pooled %d", pid, p1)
	}
	if n := testutil.ToFloat64(h.sup.met.poolBound); n != 1 {
		t.Errorf("pool bound = %v, want 1", n)
	}
	p2 := pooled(1)
	if p2 == p1 {
		t.Fatal("the bound process is back in the pool")
	}

	// accra idles: its process ends, and is not pooled again.
	h.waitState("accra", StateIdle)
	waitFor(t, 20*time.Second, "accra's process to exit", func() bool { return !alive(p1) })

	h.sup.Wake(context.Background(), "lagos")
	in, pid := h.waitInstance("lagos", true, 0)
	if pid != p2 {
		t.Errorf("lagos served by pid %d, want the second pooled process %d", pid, p2)
	}
	if who, err := get(in.Addr, "lagos", "/tenant"); err != nil || who != "lagos" {
		t.Errorf("lagos's process serves %q, %v", who, err)
	}
	mu.Lock()
	n := len(cmds)
	mu.Unlock()
	if n < 2 {
		t.Errorf("%d pool processes started, want at least 2", n)
	}
	if len(h.startTimes("accra"))+len(h.startTimes("lagos")) != 0 {
		t.Errorf("Config.Command used although the pool had processes ready")
	}
}
