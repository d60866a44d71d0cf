package e2e

// The system under test: one real `campus dev`, shared by every test of the
// package (starting it takes seconds; the tests use different schools or
// restore what they change).

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// campusBin is the binary under test, built once by TestMain.
var campusBin string

// adminPassword is every test superuser's password.
const adminPassword = "correct-horse-battery-staple"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The browser tests start the whole system; -short skips them
		// (each says so), so there is nothing to build.
		os.Exit(m.Run())
	}
	bin, err := systemtest.BuildCampus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build campus:", err)
		os.Exit(1)
	}
	campusBin = bin.Path
	code := m.Run()
	if err := shared.sys.stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	bin.Remove()
	os.Exit(code)
}

// devSystem is one running `campus dev` (systemtest.Dev), logging to a
// file in the output folder.
type devSystem struct {
	*systemtest.Dev
	data      string
	proxyPort string
	mongoURI  string
	logPath   string
	logFile   *os.File
}

// shared is the package's one system, started by the first test that asks.
var shared struct {
	once sync.Once
	sys  *devSystem
	err  error
}

// system returns the running system, starting it on first use. Every
// test here drives a browser: no browser, no system.
func system(t *testing.T) *devSystem {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test starts the whole system; skipped with -short")
	}
	chromiumPath(t) // fail (or skip on purpose) before starting anything
	shared.once.Do(func() {
		shared.sys, shared.err = startDev()
	})
	if shared.err != nil {
		t.Fatalf("start campus dev: %v", shared.err)
	}
	return shared.sys
}

func freePort() (string, error) {
	p, err := systemtest.FreePort()
	return strconv.Itoa(p), err
}

func startDev() (*devSystem, error) { return startDevWith("campus-dev.log") }

// startDevWith starts a `campus dev` logging to logName in the output
// folder, with extra flags, and gives nairobi and accra a superuser.
func startDevWith(logName string, extra ...string) (*devSystem, error) {
	if err := os.MkdirAll(outputDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	d := &devSystem{logPath: filepath.Join(outputDir(), logName)}
	var err error
	if d.logFile, err = os.Create(d.logPath); err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	d.Dev, err = systemtest.StartDev(context.Background(), systemtest.DevOptions{
		Bin:  campusBin,
		Args: append([]string{"--hold-timeout", "3s"}, extra...),
		Log:  d.logFile,
	})
	if err != nil {
		d.logFile.Close()
		return nil, fmt.Errorf("%w (log: %s)", err, d.logPath)
	}
	d.data, d.proxyPort, d.mongoURI = d.Data, d.ProxyPort, d.MongoURI
	for _, tenant := range []string{"nairobi", "accra"} {
		if err := d.createSuperuser(tenant); err != nil {
			d.stop()
			return nil, err
		}
	}
	return d, nil
}

// stop stops campus dev (SIGINT, SIGKILL 30 s later) and removes its data;
// the error says when it had to be killed.
func (d *devSystem) stop() error {
	if d == nil {
		return nil
	}
	err := d.Stop()
	d.logFile.Close()
	return err
}

// campus runs a short-lived campus command against this system.
func (d *devSystem) campus(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := d.Command(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("campus %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (d *devSystem) createSuperuser(tenant string) error {
	_, err := d.campus([]string{"CAMPUS_SUPERUSER_PASSWORD=" + adminPassword},
		"manage", tenant, "createsuperuser", "--username", adminUser(tenant), "--email", "head@"+tenant+".example", "--noinput")
	return err
}

// adminUser is the superuser's name at a school.
func adminUser(tenant string) string { return "head-" + tenant }

// url is a URL at host on the proxy's port, as a browser would use it:
// Chromium sends *.localhost to the loopback interface by itself.
func (d *devSystem) url(host, path string) string { return d.URL(host, path) }

// waitFor polls host until it answers code.
func (d *devSystem) waitFor(host string, code int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return d.WaitStatus(ctx, host, "/", code)
}

// createTenant adds a school to the running system, with a superuser, and
// waits until it is served.
func (d *devSystem) createTenant(t *testing.T, name, display string) string {
	t.Helper()
	host := name + ".school.localhost"
	if _, err := d.campus(nil, "tenant", "create", name, "--host", host, "--display-name", display); err != nil {
		t.Fatal(err)
	}
	if err := d.waitFor(host, http.StatusOK, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.createSuperuser(name); err != nil {
		t.Fatal(err)
	}
	return host
}
