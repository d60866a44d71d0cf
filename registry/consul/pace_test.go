package consul_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// TestListPace: after an answer of n tenants, the watcher waits n ×
// ListPace before it reads the KV list again, so a churning registry is
// read in fewer, bigger steps; and it still follows the changes.
func TestListPace(t *testing.T) {
	const tenants, pace = 10, 50 * time.Millisecond // half a second between reads
	sp, writer, _ := newReal(t)
	ctx := ctxT(t, 2*time.Minute)
	for i := range tenants {
		if _, err := writer.CreateTenant(ctx, tenant(t, fmt.Sprintf("paced%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	counter := &countingTransport{base: http.DefaultTransport, prefix: sp.prefix}
	cfg := sp.config()
	cfg.ListPace = pace
	cfg.MaxListPace = -1  // no cap
	cfg.MaxQueryRate = -1 // only the pace limits
	apiCfg := *cfg.API
	apiCfg.HttpClient = &http.Client{Transport: counter}
	cfg.API = &apiCfg
	watcher := mustNew(t, cfg)
	if _, err := watcher.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	before := counter.kvReads.Load()
	writes := 0
	state := registry.StateActive
	for time.Since(start) < 2*time.Second { // the same 10 tenants, changed over and over
		state = map[registry.State]registry.State{registry.StateActive: registry.StateSuspended, registry.StateSuspended: registry.StateActive}[state]
		if _, err := writer.SetState(ctx, "paced0", state); err != nil {
			t.Fatal(err)
		}
		writes++
	}
	waitSnap(t, watcher, "the last write", func(s registry.Snapshot) bool {
		return slices.ContainsFunc(s.Tenants, func(tn registry.Tenant) bool { return tn.Name == "paced0" && tn.State == state })
	})
	queries := counter.kvReads.Load() - before
	elapsed := time.Since(start)
	// Each read waits at least tenants × pace after the one before.
	allowed := int64(elapsed/(tenants*pace)) + 2 // and the one in flight, and the one started before
	t.Logf("%d writes in %v; %d KV reads (allowed %d)", writes, elapsed.Round(time.Millisecond), queries, allowed)
	if writes <= int(allowed) {
		t.Fatalf("only %d writes in %v: too few to tell a paced watcher from one that is not", writes, elapsed)
	}
	if queries > allowed {
		t.Errorf("%d KV reads in %v with %d tenants × %v: not paced", queries, elapsed, tenants, pace)
	}
}
