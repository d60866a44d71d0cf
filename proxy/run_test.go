package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// scriptedRegistry answers Watch from a queue of results; with the queue
// empty, Watch blocks until ctx ends. Only Watch is used by the proxy.
type scriptedRegistry struct {
	registry.Registry // nil: any other method panics

	mu      sync.Mutex
	results chan watchResult
	afters  []uint64
}

type watchResult struct {
	snap registry.Snapshot
	err  error
}

func newScriptedRegistry() *scriptedRegistry {
	return &scriptedRegistry{results: make(chan watchResult, 16)}
}

func (r *scriptedRegistry) Watch(ctx context.Context, after uint64) (registry.Snapshot, error) {
	r.mu.Lock()
	r.afters = append(r.afters, after)
	r.mu.Unlock()
	select {
	case res := <-r.results:
		return res.snap, res.err
	case <-ctx.Done():
		return registry.Snapshot{}, ctx.Err()
	}
}

func (r *scriptedRegistry) watchedAfter() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.afters...)
}

func TestRunFollowsRegistryAndSurvivesErrors(t *testing.T) {
	tp := newTestProxy(t, Config{})
	admin := httptest.NewServer(tp.AdminHandler(tp.reg))
	t.Cleanup(admin.Close)
	reg := newScriptedRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tp.Run(ctx, reg) }()

	health := func() (int, Health) {
		resp, err := http.Get(admin.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h Health
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	if code, h := health(); code != http.StatusServiceUnavailable || h.Status != "starting" {
		t.Fatalf("healthz before the first table: %d %+v", code, h)
	}

	// The registry fails twice, then answers.
	nairobi := tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")
	reg.results <- watchResult{err: errors.New("registry unreachable")}
	reg.results <- watchResult{err: errors.New("registry unreachable")}
	reg.results <- watchResult{snap: registry.Snapshot{Version: 4, Tenants: []registry.Tenant{nairobi}}}
	eventually(t, "the first table", func() bool { return tp.table.Load().version == 4 })
	if code, h := health(); code != http.StatusOK || h.WatchError != "" {
		t.Fatalf("healthz after the first table: %d %+v", code, h)
	}

	// A later failure keeps the table and stays healthy, but says so.
	reg.results <- watchResult{err: errors.New("registry unreachable")}
	eventually(t, "the watch error to show", func() bool { _, h := health(); return h.WatchError != "" })
	if code, h := health(); code != http.StatusOK || h.TableVersion != 4 {
		t.Fatalf("healthz while the registry fails: %d %+v", code, h)
	}
	if tp.table.Load().routes["nairobi.school.localhost"] == nil {
		t.Fatal("the last table was dropped on a watch error")
	}
	reg.results <- watchResult{snap: registry.Snapshot{Version: 9, Tenants: []registry.Tenant{suspended(nairobi)}}}
	eventually(t, "the second table", func() bool { return tp.table.Load().version == 9 })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after ctx ended, want nil", err)
	}
	afters := reg.watchedAfter()
	if len(afters) < 6 || afters[0] != 0 || afters[3] != 4 || afters[len(afters)-1] != 9 {
		t.Errorf("Watch was called with after = %v, want 0,0,0,4,4,9", afters)
	}
}

func TestAdminRoutes(t *testing.T) {
	tp := newTestProxy(t, Config{})
	threeSchools(t, tp)
	admin := httptest.NewServer(tp.AdminHandler(tp.reg))
	t.Cleanup(admin.Close)

	resp, err := http.Get(admin.URL + "/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var routes Routes
	if err := json.NewDecoder(resp.Body).Decode(&routes); err != nil {
		t.Fatal(err)
	}
	n := routes.Hosts["records.nairobi-high.example"]
	if routes.Version != 1 || routes.Table != 1 || len(routes.Hosts) != 4 || n.Tenant != "nairobi" ||
		n.State != "active" || len(n.Instances) != 1 || !n.Instances[0].Healthy || n.Instances[0].ID != "nairobi-1" {
		t.Fatalf("routes = %+v", routes)
	}

	resp, err = http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, name := range []string{MetricRoutes, MetricTenantInstances, MetricTableUpdates, MetricInFlight} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
