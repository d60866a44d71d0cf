package consultest_test

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/campus-saas/campus/registry/consul/consultest"
)

func client(t *testing.T, s *consultest.Server) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKVIndexesAndCAS(t *testing.T) {
	s := consultest.NewServer(t)
	kv := client(t, s).KV()

	if p, meta, err := kv.Get("a/x", nil); err != nil || p != nil || meta.LastIndex == 0 {
		t.Fatalf("Get missing = %v, %+v, %v; want nil with an index > 0", p, meta, err)
	}
	ok, _, err := kv.CAS(&api.KVPair{Key: "a/x", Value: []byte("1")}, nil)
	if err != nil || !ok {
		t.Fatalf("CAS index 0 on a missing key = %v, %v; want true", ok, err)
	}
	if ok, _, _ := kv.CAS(&api.KVPair{Key: "a/x", Value: []byte("2")}, nil); ok {
		t.Fatal("CAS index 0 on an existing key succeeded")
	}
	p, _, err := kv.Get("a/x", nil)
	if err != nil || string(p.Value) != "1" || p.CreateIndex != p.ModifyIndex {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	if _, err := kv.Put(&api.KVPair{Key: "a/x", Value: []byte("3")}, nil); err != nil {
		t.Fatal(err)
	}
	p2, _, _ := kv.Get("a/x", nil)
	if p2.ModifyIndex <= p.ModifyIndex || p2.CreateIndex != p.CreateIndex {
		t.Fatalf("after Put: create %d modify %d, before create %d modify %d", p2.CreateIndex, p2.ModifyIndex, p.CreateIndex, p.ModifyIndex)
	}
	if ok, _, _ := kv.CAS(&api.KVPair{Key: "a/x", Value: []byte("4"), ModifyIndex: p.ModifyIndex}, nil); ok {
		t.Fatal("CAS with a stale index succeeded")
	}
	if ok, _, _ := kv.DeleteCAS(&api.KVPair{Key: "a/x", ModifyIndex: p.ModifyIndex}, nil); ok {
		t.Fatal("DeleteCAS with a stale index succeeded")
	}
	if ok, _, _ := kv.DeleteCAS(&api.KVPair{Key: "a/x", ModifyIndex: p2.ModifyIndex}, nil); !ok {
		t.Fatal("DeleteCAS with the current index failed")
	}
	// The prefix's index does not go backwards on delete (tombstones).
	_, meta, _ := kv.List("a/", nil)
	if meta.LastIndex <= p2.ModifyIndex {
		t.Fatalf("List index after delete = %d, want > %d", meta.LastIndex, p2.ModifyIndex)
	}
}

func TestTxnAllOrNothing(t *testing.T) {
	s := consultest.NewServer(t)
	c := client(t, s)
	if _, err := c.KV().Put(&api.KVPair{Key: "h/taken", Value: []byte("owner")}, nil); err != nil {
		t.Fatal(err)
	}
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "t/new", Value: []byte("{}")}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "h/free", Value: []byte("new")}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "h/taken", Value: []byte("new")}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "h/taken"}},
	}
	ok, resp, _, err := c.Txn().Txn(ops, nil)
	if err != nil || ok {
		t.Fatalf("Txn = %v, %v; want rolled back", ok, err)
	}
	if len(resp.Errors) != 2 || resp.Errors[0].OpIndex != 2 || resp.Errors[1].OpIndex != 3 || len(resp.Results) != 0 {
		t.Fatalf("Txn errors = %+v results %+v; want ops 2 and 3, no results", resp.Errors, resp.Results)
	}
	for _, k := range []string{"t/new", "h/free"} {
		if p, _, _ := c.KV().Get(k, nil); p != nil {
			t.Errorf("%s was written by a rolled-back transaction", k)
		}
	}
	ok, resp, _, err = c.Txn().Txn(ops[:2], nil)
	if err != nil || !ok || len(resp.Results) != 2 || resp.Results[0].KV.Value != nil {
		t.Fatalf("Txn = %v, %+v, %v; want 2 results without values", ok, resp, err)
	}
	if resp.Results[0].KV.ModifyIndex != resp.Results[1].KV.ModifyIndex {
		t.Errorf("one transaction, two indexes: %d and %d", resp.Results[0].KV.ModifyIndex, resp.Results[1].KV.ModifyIndex)
	}
	ok, resp, _, err = c.Txn().Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: "h/free"}},
		{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: "t/new", Index: resp.Results[0].KV.ModifyIndex}},
	}, nil)
	if err != nil || !ok || string(resp.Results[0].KV.Value) != "new" {
		t.Fatalf("get + delete-cas = %v, %+v, %v", ok, resp, err)
	}
}

func TestBlockingQuery(t *testing.T) {
	s := consultest.NewServer(t)
	kv := client(t, s).KV()
	_, meta, err := kv.List("p/", nil)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changes: the query returns when the wait elapses.
	start := time.Now()
	_, m2, err := kv.List("p/", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 100 * time.Millisecond})
	if err != nil || time.Since(start) < 100*time.Millisecond || m2.LastIndex != meta.LastIndex {
		t.Fatalf("idle blocking query: %v after %v, index %d", err, time.Since(start), m2.LastIndex)
	}

	// A write wakes it.
	done := make(chan api.KVPairs, 1)
	go func() {
		pairs, _, _ := kv.List("p/", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- pairs
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := kv.Put(&api.KVPair{Key: "p/k", Value: []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case pairs := <-done:
		if len(pairs) != 1 {
			t.Fatalf("woken query returned %v", pairs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query not woken by a write")
	}

	// A restore wakes blocked queries at once, with a lower index.
	cp := s.Checkpoint()
	if _, err := kv.Put(&api.KVPair{Key: "p/k2", Value: []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	_, high, _ := kv.List("p/", nil)
	got := make(chan uint64, 1)
	go func() {
		_, m, _ := kv.List("p/", &api.QueryOptions{WaitIndex: high.LastIndex, WaitTime: time.Minute})
		got <- m.LastIndex
	}()
	time.Sleep(20 * time.Millisecond)
	s.Restore(cp)
	select {
	case idx := <-got:
		if idx >= high.LastIndex {
			t.Fatalf("after restore the index is %d, want below %d", idx, high.LastIndex)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("restore did not wake a blocked query")
	}
}

func TestAgentChecksAndHealth(t *testing.T) {
	s := consultest.NewServer(t)
	c := client(t, s)
	var healthy atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && healthy.Load() {
			return
		}
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(app.Close)
	reg := &api.AgentServiceRegistration{
		ID: "i1", Name: "web", Tags: []string{"x"}, Address: "127.0.0.1", Port: 1234, Meta: map[string]string{"k": "v"},
		Check: &api.AgentServiceCheck{HTTP: app.URL + "/readyz", Interval: "20ms", DeregisterCriticalServiceAfter: "300ms"},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	status := func(passingOnly bool) []*api.ServiceEntry {
		es, _, err := c.Health().Service("web", "", passingOnly, nil)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	es := status(false)
	if len(es) != 1 || es[0].Checks.AggregatedStatus() != api.HealthCritical || es[0].Service.Meta["k"] != "v" {
		t.Fatalf("new service: %+v; want one entry, critical until the first check", es)
	}
	if len(status(true)) != 0 {
		t.Fatal("?passing returned a critical service")
	}
	healthy.Store(true)
	waitUntil(t, "check passing", func() bool { return len(status(true)) == 1 })

	// Stays critical past DeregisterCriticalServiceAfter: reaped.
	healthy.Store(false)
	waitUntil(t, "critical service reaped", func() bool { return len(status(false)) == 0 })
	if _, _, err := c.Agent().Service("i1", nil); err == nil {
		t.Fatal("agent still knows the reaped service")
	}
	err := c.Agent().ServiceDeregister("i1")
	var se api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("deregister unknown = %v, want a 404", err)
	}
}

func TestStopStart(t *testing.T) {
	s := consultest.NewServer(t)
	c := client(t, s)
	if _, err := c.KV().Put(&api.KVPair{Key: "k", Value: []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := c.KV().Get("k", (&api.QueryOptions{}).WithContext(ctx)); err == nil {
		t.Fatal("Get succeeded while stopped")
	}
	s.Start()
	p, _, err := c.KV().Get("k", nil)
	if err != nil || p == nil || string(p.Value) != "v" {
		t.Fatalf("after Start: %+v, %v", p, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOnlyTestsImportThisPackage walks the module: no non-test file
// outside this package may import it.
func TestOnlyTestsImportThisPackage(t *testing.T) {
	const self = "github.com/campus-saas/campus/registry/consul/consultest"
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if filepath.Dir(path) == filepath.Join(root, "registry", "consul", "consultest") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return nil // not ours to judge; the build will say
		}
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) == self {
				t.Errorf("%s imports %s; only tests may", path, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
