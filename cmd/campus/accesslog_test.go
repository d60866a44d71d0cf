package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

// TestProxyAccessLogKeptOnShutdown: `campus proxy` buffers its request
// lines, and every request answered before SIGINT is in its log once it
// has exited, with the tenant it went to.
func TestProxyAccessLogKeptOnShutdown(t *testing.T) {
	dir := t.TempDir()
	reg, err := embedded.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer app.Close()
	tn, err := registry.NewTenant("lagos", []string{"lagos.school.localhost"}, "Lagos")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := reg.RegisterInstance(ctx, registry.Instance{ID: "lagos-1", Tenant: "lagos", Addr: strings.TrimPrefix(app.URL, "http://"), Healthy: true}); err != nil {
		t.Fatal(err)
	}
	reg.Close()

	addr, admin := systemtest.FreeAddr(t), systemtest.FreeAddr(t)
	p := systemtest.StartForTest(t, "campus proxy", []string{campusBin, "proxy", "--registry", "embedded", "--data", dir,
		"--listen", addr, "--admin-listen", admin, "--log-format", "json"},
		systemtest.Options{StopSignal: syscall.SIGINT, StopTimeout: time.Minute})

	get := func(path string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Host = "lagos.school.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if err := systemtest.Eventually(time.Minute, func() error {
		if get("/warm-up") != 200 {
			return errors.New("not routed")
		}
		return nil
	}); err != nil {
		t.Fatal("campus proxy does not route lagos")
	}
	const n = 30
	for i := range n {
		if s := get(fmt.Sprintf("/req/%d", i)); s != 200 {
			t.Fatalf("request %d: %d", i, s)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal("campus proxy did not stop")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("campus proxy exited: %v", err)
	}
	b := p.Output()
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(b))
	for sc.Scan() {
		var line struct{ Msg, Tenant, Path string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" && line.Tenant == "lagos" {
			seen[line.Path] = true
		}
	}
	for i := range n {
		if p := fmt.Sprintf("/req/%d", i); !seen[p] {
			t.Errorf("no access log line for %s after shutdown; log:\n%s", p, b)
			break
		}
	}
}
