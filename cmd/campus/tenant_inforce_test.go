package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/systemtest"
)

// TestTenantListShowsValuesInForce: beside `campus dev --idle-timeout 1h
// --memory 256MiB`, `tenant list` shows those values for a school without
// its own, on the embedded registry and on a real Consul (issue 28); and
// not for the schools of another Consul prefix, which that dev does not
// run ("default": not known).
func TestTenantListShowsValuesInForce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts campus dev (and Consul); skipped with -short")
	}
	for _, backend := range []string{"embedded", "consul"} {
		t.Run(backend, func(t *testing.T) {
			var env []string
			if backend == "consul" {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				srv, err := engines.StartConsul(ctx, engines.ConsulOptions{})
				if err != nil {
					t.Fatalf("start a real Consul: %v", err)
				}
				t.Cleanup(srv.Stop)
				env = []string{"CAMPUS_REGISTRY=consul", "CONSUL_HTTP_ADDR=" + srv.Addr, "CAMPUS_CONSUL_PREFIX=inforce/"}
			}
			d := startDevWith(t, env, "--start-idle", "--idle-timeout", "1h", "--memory", "256MiB")
			column := func(env []string, tenant string, i int) string {
				t.Helper()
				out, err := d.campus(env, "", "tenant", "list")
				if err != nil {
					t.Fatalf("tenant list: %v\n%s", err, out)
				}
				for _, line := range strings.Split(out, "\n") {
					if f := strings.Fields(line); len(f) > i && f[0] == tenant {
						return f[i]
					}
				}
				t.Fatalf("tenant %s not in tenant list:\n%s", tenant, out)
				return ""
			}
			if got := column(env, "nairobi", 4); got != "1h" {
				t.Errorf("nairobi's IDLE TIMEOUT %q, want campus dev's --idle-timeout 1h", got)
			}
			if got := column(env, "nairobi", 5); got != "256MiB" {
				t.Errorf("nairobi's MEMORY %q, want campus dev's --memory 256MiB", got)
			}
			if out, err := d.campus(env, "", "tenant", "set", "accra", "--idle-timeout", "5m"); err != nil {
				t.Fatalf("tenant set: %v\n%s", err, out)
			}
			if got := column(env, "accra", 4); got != "5m" {
				t.Errorf("accra's IDLE TIMEOUT %q, want its own 5m", got)
			}
			if backend != "consul" {
				return
			}
			// Another prefix of the same Consul: schools this dev does not run.
			other := append(env[:len(env):len(env)], "CAMPUS_CONSUL_PREFIX=elsewhere/")
			if out, err := d.campus(other, "", "tenant", "create", "kisumu", "--host", "kisumu.example.org"); err != nil {
				t.Fatalf("tenant create: %v\n%s", err, out)
			}
			if got := column(other, "kisumu", 4); got != "default" {
				t.Errorf("kisumu (another prefix) IDLE TIMEOUT %q, want default (not this dev's)", got)
			}
		})
	}
}

// startDevWith is startDev with env added to campus dev's environment.
func startDevWith(t *testing.T, env []string, extra ...string) *devSystem {
	t.Helper()
	dev := systemtest.DevForTest(t, systemtest.DevOptions{
		Bin:      campusBin,
		Args:     append([]string{"--hold-timeout", "3s"}, extra...),
		ExtraEnv: append(plantedSecrets[:len(plantedSecrets):len(plantedSecrets)], env...),
	})
	return &devSystem{Dev: dev, t: t, data: dev.Data, proxyPort: dev.ProxyPort, adminAddr: dev.AdminAddr,
		mongoURI: dev.MongoURI, logs: dev.Buffer()}
}
