package consul_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingTransport counts the blocking queries on the tenants' KV prefix.
type countingTransport struct {
	base    http.RoundTripper
	prefix  string
	kvReads atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/"+c.prefix) {
		c.kvReads.Add(1)
	}
	return c.base.RoundTrip(r)
}

// TestWatchRateLimit: while the tenants' KV prefix changes many times a
// second, a watcher limited to MaxQueryRate queries a second makes no more
// KV queries than the limit allows (burst plus rate × time), and still
// follows the changes. A slow machine can only make fewer queries, never
// more; without the limit the watcher would query once per write.
func TestWatchRateLimit(t *testing.T) {
	const perSecond = 4
	sp, writer, _ := newReal(t)
	counter := &countingTransport{base: http.DefaultTransport, prefix: sp.prefix}
	cfg := sp.config()
	cfg.MaxQueryRate = perSecond
	apiCfg := *cfg.API
	apiCfg.HttpClient = &http.Client{Transport: counter}
	cfg.API = &apiCfg
	watcher := mustNew(t, cfg)

	ctx := ctxT(t, 2*time.Minute)
	if _, err := watcher.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	before := counter.kvReads.Load()
	writes := 0
	for time.Since(start) < 2*time.Second {
		if _, err := writer.CreateTenant(ctx, tenant(t, fmt.Sprintf("churn%d", writes))); err != nil {
			t.Fatal(err)
		}
		writes++
	}
	waitSnap(t, watcher, "the last write", hasTenant(fmt.Sprintf("churn%d", writes-1)))
	queries := counter.kvReads.Load() - before
	elapsed := time.Since(start)
	allowed := int64(perSecond + perSecond*elapsed.Seconds() + 1) // burst, rate × time, the query in flight
	t.Logf("%d writes in %v; %d KV queries (allowed %d)", writes, elapsed.Round(time.Millisecond), queries, allowed)
	if writes <= int(allowed) {
		t.Fatalf("only %d writes in %v: too few to tell a limited watcher from an unlimited one", writes, elapsed)
	}
	if queries > allowed {
		t.Errorf("%d KV queries in %v with MaxQueryRate %d: the limit is not applied", queries, elapsed, perSecond)
	}
	if queries < 2 {
		t.Errorf("%d KV queries: the watcher did not follow the changes", queries)
	}
}
