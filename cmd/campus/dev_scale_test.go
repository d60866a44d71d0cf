package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/proxy"
)

// routeStatus reads a host's scale-to-zero status from the proxy's /routes.
func (d *devSystem) routeStatus(host string) string {
	d.t.Helper()
	resp, err := http.Get("http://" + d.adminAddr + "/routes")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r proxy.Routes
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		d.t.Fatal(err)
	}
	return r.Hosts[host].Status
}

// tenantRun is the RUN column of `campus tenant list` for tenant.
func (d *devSystem) tenantRun(tenant string) string {
	d.t.Helper()
	out, err := d.campus(nil, "", "tenant", "list")
	if err != nil {
		d.t.Fatalf("tenant list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == tenant {
			return f[2]
		}
	}
	d.t.Fatalf("tenant %s not in tenant list:\n%s", tenant, out)
	return ""
}

// poolPIDs are the unbound `campus app-pool` children of campus dev.
func poolPIDs(parent int) []int {
	var out []int
	kids, _ := systemtest.Children(parent)
	for _, k := range kids {
		if len(k.Args) == 2 && k.Args[1] == "app-pool" {
			out = append(out, k.Pid)
		}
	}
	return out
}

// TestDevScaleToZero: campus dev with --start-idle, a short idle timeout
// and a pool. Tenants start on their first request (startDev waits for all
// three), stop when idle, start again on the next request; a per-tenant
// override keeps one running; a suspended tenant is never started; the
// pool's unbound process holds no tenant and no secret.
func TestDevScaleToZero(t *testing.T) {
	d := startDev(t, "--start-idle", "--idle-timeout", "2s", "--pool", "1")
	if out, err := d.campus(nil, "", "tenant", "set", "accra", "--idle-timeout", "0"); err != nil || !strings.Contains(out, "never") {
		t.Fatalf("tenant set accra --idle-timeout 0: %v\n%s", err, out)
	}
	if out, err := d.campus(nil, "", "tenant", "set", "accra", "--idle-timeout", "soon"); err == nil {
		t.Errorf("tenant set --idle-timeout soon succeeded:\n%s", out)
	}
	if out, err := d.campus(nil, "", "tenant", "suspend", "default"); err != nil {
		t.Fatalf("suspend default: %v\n%s", err, out)
	}
	c := d.client()
	d.waitFor("accra.school.localhost", 200, 30*time.Second)

	// The pool's processes, bound or not: no tenant in their arguments, no
	// database URI and none of the shell's secrets in their environment
	// (a bound one got its own tenant's URI on stdin).
	read := 0
	deadline := time.Now().Add(60 * time.Second)
	for read == 0 && time.Now().Before(deadline) {
		for _, pid := range poolPIDs(d.Pid()) {
			env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
			if err != nil {
				continue // gone meanwhile
			}
			read++
			for _, bad := range append([]string{"MONGODB_URI", "nairobi", "accra", "planted"}, plantedSecrets...) {
				if strings.Contains(string(env), bad) {
					t.Errorf("pool process %d's environment contains %q", pid, bad)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if read == 0 {
		t.Fatal("no app-pool process under campus dev")
	}

	// nairobi idles away; accra (never) stays.
	if systemtest.Eventually(60*time.Second, func() error {
		if d.tenantRun("nairobi") != "idle" {
			return errors.New("not idle")
		}
		return nil
	}) != nil {
		t.Fatalf("nairobi not idle within 60s (tenant list says %s)", d.tenantRun("nairobi"))
	}
	if st := d.routeStatus("nairobi.school.localhost"); st != proxy.RouteIdle {
		t.Errorf("/routes: nairobi %q, want idle", st)
	}
	if run := d.tenantRun("accra"); run != "running" {
		t.Errorf("accra (idle timeout never) is %s, want running", run)
	}
	if code, body := d.get(c, "nairobi.school.localhost", "/"); code != 200 || !strings.Contains(body, "Nairobi") {
		t.Fatalf("nairobi after idle: %d\n%.300s", code, body)
	}
	if run := d.tenantRun("nairobi"); run != "running" {
		t.Errorf("nairobi after a request is %s, want running", run)
	}
	// The suspended school: maintenance page, never started.
	for range 3 {
		if code, _ := d.get(c, "school.localhost", "/"); code != http.StatusServiceUnavailable {
			t.Errorf("suspended default: %d, want 503", code)
		}
	}
	if run := d.tenantRun("default"); run != "-" {
		t.Errorf("suspended default shows %q in tenant list, want -", run)
	}
	if n := strings.Count(d.logs.String(), `"msg":"child started","component":"supervisor","tenant":"default"`); n != 1 {
		t.Errorf("default was started %d times, want once (before its suspension)", n)
	}
}
