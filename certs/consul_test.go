package certs

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/engines"
)

// TestTwoProxiesOnOneConsulOrderOnce: two proxies, each with its own
// Consul client, share one certificate store. Pebble validates against the
// first proxy's HTTP port only, so an order placed by the second succeeds
// only if the first answers its challenge from the shared store.
func TestTwoProxiesOnOneConsulOrderOnce(t *testing.T) {
	agent := engines.ConsulForTest(t, engines.ConsulOptions{})
	httpA, httpB := listen(t), listen(t)
	pb := startPebble(t, port(httpA), 90*24*time.Hour)
	prefix := "test-" + t.Name()
	a := startEdge(t, httpA, pb, NewConsulStorage(agent.Client(agent.Token), prefix), nil)
	b := startEdge(t, httpB, pb, NewConsulStorage(agent.Client(agent.Token), prefix), nil)
	schools := snapshot(1,
		school{name: "moshi", hosts: []string{"moshi.campus.test"}, addr: startSchoolApp(t, "moshi")},
		school{name: "arusha", hosts: []string{"arusha.campus.test"}, addr: startSchoolApp(t, "arusha")})
	a.proxy.Update(schools)
	b.proxy.Update(schools)

	// Ordered through B (challenge answered by A from Consul), then served
	// by A from Consul without an order of its own.
	leafB, err := handshake(b.tlsAddr, "moshi.campus.test", pb.Roots)
	if err != nil {
		t.Fatalf("proxy B: %v", err)
	}
	leafA, err := handshake(a.tlsAddr, "moshi.campus.test", pb.Roots)
	if err != nil {
		t.Fatalf("proxy A: %v", err)
	}
	if !leafA.Equal(leafB) {
		t.Error("the two proxies serve different certificates")
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("%d orders for one host on two proxies, want 1", n)
	}

	// Both proxies obtain the same name at the same moment: the Consul
	// lock lets one order; the other finds the certificate in the store.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, e := range []*edge{a, b} {
		wg.Go(func() { errs[i] = e.manager.magic.ObtainCertSync(context.Background(), "arusha.campus.test") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("obtain on proxy %d: %v", i, err)
		}
	}
	if n := pb.Orders(); n != 2 {
		t.Errorf("%d orders after a concurrent obtain of a second host, want 2", n)
	}
}

func TestConsulStorage(t *testing.T) {
	agent := engines.ConsulForTest(t, engines.ConsulOptions{})
	ctx := context.Background()
	s := NewConsulStorage(agent.Client(agent.Token), "test-storage")
	other := NewConsulStorage(agent.Client(agent.Token), "test-storage")

	if _, err := s.Load(ctx, "certs/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("load missing: %v", err)
	}
	before := time.Now()
	for _, k := range []string{"certs/a/a.crt", "certs/a/a.key", "certs/b/b.crt", "certs/ab"} {
		if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := other.Load(ctx, "certs/a/a.key"); err != nil || string(v) != "v:certs/a/a.key" {
		t.Errorf("load through another client: %q %v", v, err)
	}
	if !s.Exists(ctx, "certs/a") || !s.Exists(ctx, "certs/a/a.crt") || s.Exists(ctx, "certs/c") {
		t.Error("Exists")
	}
	info, err := s.Stat(ctx, "certs/a/a.crt")
	if err != nil || !info.IsTerminal || info.Size != int64(len("v:certs/a/a.crt")) || info.Modified.Before(before.Add(-time.Second)) {
		t.Errorf("stat %+v %v", info, err)
	}
	if info, err := s.Stat(ctx, "certs/a"); err != nil || info.IsTerminal {
		t.Errorf("stat dir %+v %v", info, err)
	}
	list, err := s.List(ctx, "certs", false)
	slices.Sort(list)
	if err != nil || !slices.Equal(list, []string{"certs/a", "certs/ab", "certs/b"}) {
		t.Errorf("list: %q %v", list, err)
	}
	list, err = s.List(ctx, "certs", true)
	slices.Sort(list)
	if err != nil || !slices.Equal(list, []string{"certs/a/a.crt", "certs/a/a.key", "certs/ab", "certs/b/b.crt"}) {
		t.Errorf("recursive list: %q %v", list, err)
	}
	// Deleting "certs/a" leaves "certs/ab" alone.
	if err := s.Delete(ctx, "certs/a"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certs/a/a.crt") || !s.Exists(ctx, "certs/ab") {
		t.Error("delete removed the wrong keys")
	}

	// A lock held by one store excludes the other until unlocked.
	if err := s.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = other.Lock(short, "issue_cert_x")
	cancel()
	if err == nil {
		t.Fatal("a second store took a held lock")
	}
	got := make(chan error, 1)
	go func() { got <- other.Lock(ctx, "issue_cert_x") }()
	select {
	case err := <-got:
		t.Fatalf("lock taken while held: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := s.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lock not handed over within 60 s of the unlock")
	}
	if err := other.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if err := other.Unlock(ctx, "issue_cert_x"); err == nil {
		t.Error("unlocking a lock not held is not an error")
	}
}
