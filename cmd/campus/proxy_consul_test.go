package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry/consul"
)

// A proxy on a wildcard admin address with the Consul registry and no
// --admin-advertise is refused as a usage error before it starts.
func TestProxyWildcardAdminRefused(t *testing.T) {
	for _, cmd := range [][]string{
		{"proxy", "--registry", "consul", "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"},
		{"dev", "--registry", "consul", "--listen", "127.0.0.1:0", "--admin-listen", ":0", "--data", t.TempDir()},
	} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string {
			if k == "CONSUL_HTTP_ADDR" {
				return "127.0.0.1:1" // never dialled
			}
			return ""
		}}
		if code := run(context.Background(), e, cmd); code != 2 || !strings.Contains(errb.String(), "--admin-advertise") {
			t.Errorf("campus %s: exit %d, want 2 naming --admin-advertise:\n%s", strings.Join(cmd, " "), code, errb.String())
		}
	}
}

// TestProxyRegistersInConsul runs `campus proxy` on a real Consul agent: it
// registers as campus-proxy at its admin address, metrics_port naming that
// port, with a /healthz check that passes, and deregisters when it stops.
func TestProxyRegistersInConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul")
	}
	agent := engines.ConsulForTest(t, engines.ConsulOptions{})
	t.Setenv("CONSUL_HTTP_ADDR", agent.Addr)
	t.Setenv("CONSUL_HTTP_TOKEN", agent.Token)
	cc := agent.Client(agent.Token)
	prefix := fmt.Sprintf("test-proxy-%d/", time.Now().UnixNano())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb systemtest.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &errb, getenv: func(k string) string {
		switch k {
		case "CONSUL_HTTP_ADDR":
			return agent.Addr
		case "CAMPUS_LOG_FORMAT":
			return "text"
		}
		return ""
	}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, []string{"proxy", "--registry", "consul", "--consul-prefix", prefix,
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--consul-check-interval", "1s"})
	}()

	var addr string
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case code := <-done:
			t.Fatalf("campus proxy exited %d:\n%s", code, errb.String())
		default:
		}
		entries, _, err := cc.Health().Service(consul.ProxyServiceName, "", true, nil)
		if err == nil && len(entries) == 1 {
			s := entries[0].Service
			addr = net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
			if s.Meta[consul.ProxyMetricsPortMeta] != strconv.Itoa(s.Port) || s.ID != consul.ProxyServiceName+"-"+addr {
				t.Fatalf("registered %+v, want ID %s-%s and meta %s=%d", s, consul.ProxyServiceName, addr, consul.ProxyMetricsPortMeta, s.Port)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no passing %s service (%v, %d entries):\n%s", consul.ProxyServiceName, err, len(entries), errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics at the registered address: %s", resp.Status)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("campus proxy exited %d on shutdown:\n%s", code, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("campus proxy did not stop")
	}
	services, err := cc.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range services {
		if s.Service == consul.ProxyServiceName {
			t.Errorf("service %s still registered after the proxy stopped", id)
		}
	}
}
