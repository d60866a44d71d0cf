package systemtest

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// campusBin is built by TestMain only when a test needs it (not with
// -short).
var campusBin *Binary

func TestMain(m *testing.M) {
	code := m.Run()
	campusBin.Remove()
	os.Exit(code)
}

func needCampus(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts campus dev; skipped with -short")
	}
	if campusBin == nil {
		b, err := BuildCampus()
		if err != nil {
			t.Fatal(err)
		}
		campusBin = b
	}
	return campusBin.Path
}

// TestStartDev starts the whole system with its defaults and checks what
// it returns: the seeded schools answer through ProxyAddr, each from its
// own app (its own name on its page, never another's), the admin listener
// answers, and Stop ends it gracefully and removes the data it made.
func TestStartDev(t *testing.T) {
	bin := needCampus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := StartDev(ctx, DevOptions{Bin: bin, Args: []string{"--hold-timeout", "3s"}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Stop()
		}
	}()
	names := map[string]string{"nairobi.school.localhost": "Nairobi", "accra.school.localhost": "Accra"}
	for host, name := range names {
		code, body, err := d.Get(ctx, host, "/")
		if err != nil || code != http.StatusOK || !strings.Contains(body, name) {
			t.Errorf("%s: %d %v, want 200 naming %s", host, code, err, name)
		}
		for other, otherName := range names {
			if other != host && strings.Contains(body, otherName) {
				t.Errorf("%s's page names %s", host, otherName)
			}
		}
	}
	if code, _, err := d.Get(ctx, "no-such-school.school.localhost", "/"); err != nil || code != http.StatusNotFound {
		t.Errorf("unknown host: %d %v, want 404", code, err)
	}
	if code, _, err := get(ctx, "http://"+d.AdminAddr+"/healthz", ""); err != nil || code != http.StatusOK {
		t.Errorf("admin /healthz: %d %v", code, err)
	}
	if !strings.HasPrefix(d.MongoURI, "mongodb://") || d.URL("nairobi.school.localhost", "/x") != "http://nairobi.school.localhost:"+d.ProxyPort+"/x" {
		t.Errorf("MongoURI %q, URL %q", d.MongoURI, d.URL("nairobi.school.localhost", "/x"))
	}
	stopped = true
	if err := d.Stop(); err != nil {
		t.Error(err)
	}
	if d.Err() != nil {
		t.Errorf("campus dev exited with %v after SIGINT, want a clean exit", d.Err())
	}
	if _, err := os.Stat(d.Data); !os.IsNotExist(err) {
		t.Errorf("data folder %s still there after Stop (%v)", d.Data, err)
	}
}

// TestStartDevFailsFast: a campus dev that exits (here on a flag it does
// not know) makes StartDev return with its output as soon as it has
// exited ("exited"), not when the readiness deadline ends ("not ready").
func TestStartDevFailsFast(t *testing.T) {
	bin := needCampus(t)
	_, err := StartDev(context.Background(), DevOptions{Bin: bin, Args: []string{"--no-such-flag"}, ReadyWithin: 10 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("StartDev = %v, want an error naming the exit and campus's message", err)
	}
}
