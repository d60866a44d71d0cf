package proxyserver

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry/embedded"
)

// addrLogger records the admin address of the "proxy listening" line.
type addrLogger struct {
	slog.Handler
	admin chan string
}

func (addrLogger) Enabled(context.Context, slog.Level) bool { return true }

func (h addrLogger) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "proxy listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "admin" {
				h.admin <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

func testConfig(t *testing.T) (Config, chan string) {
	reg, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	admin := make(chan string, 1)
	return Config{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		HoldTimeout: time.Second, UpstreamTimeout: time.Second,
		Logger:   slog.New(addrLogger{Handler: slog.DiscardHandler, admin: admin}),
		Metrics:  prometheus.NewRegistry(),
		Registry: reg,
	}, admin
}

// Run serves /healthz on the admin listener and returns nil when its
// context ends (a clean shutdown).
func TestRunServesAndStopsCleanly(t *testing.T) {
	t.Parallel()
	cfg, admin := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-admin:
	case err := <-done:
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no listener after 30s")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// Certificates kept in Consul KV without the Consul registry are refused
// before anything is served.
func TestRunRefusesConsulCertsWithoutConsul(t *testing.T) {
	t.Parallel()
	cfg, _ := testConfig(t)
	cfg.TLS = &TLS{Listen: "127.0.0.1:0", Directory: "https://acme.invalid/directory"}
	err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "Consul registry") {
		t.Fatalf("Run: %v, want refused for the missing Consul registry", err)
	}
}
