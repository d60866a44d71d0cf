package e2e

// The system under test: one real `campus dev`, shared by every test of the
// package (starting it takes seconds; the tests use different schools or
// restore what they change).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	dir, err := os.MkdirTemp("", "campus-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	campusBin = filepath.Join(dir, "campus")
	build := exec.Command("go", "build", "-o", campusBin, "../cmd/campus")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build campus:", err)
		os.Exit(1)
	}
	code := m.Run()
	shared.sys.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// devSystem is one running `campus dev`.
type devSystem struct {
	cmd       *exec.Cmd
	data      string
	proxyPort string
	mongoURI  string
	logPath   string
	logFile   *os.File
	done      chan error
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

func startDev() (*devSystem, error) { return startDevWith("campus-dev.log") }

// startDevWith starts a `campus dev` logging to logName in the output
// folder, with extra flags.
func startDevWith(logName string, extra ...string) (*devSystem, error) {
	data, err := os.MkdirTemp("", "campus-e2e-data-")
	if err != nil {
		return nil, err
	}
	ports := make([]string, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
	}
	if err := os.MkdirAll(outputDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	d := &devSystem{
		data:      data,
		proxyPort: ports[0],
		mongoURI:  "mongodb://127.0.0.1:" + ports[2],
		logPath:   filepath.Join(outputDir(), logName),
		done:      make(chan error, 1),
	}
	if d.logFile, err = os.Create(d.logPath); err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	d.cmd = exec.Command(campusBin, "dev",
		"--data", data,
		"--listen", "127.0.0.1:"+d.proxyPort,
		"--admin-listen", "127.0.0.1:"+ports[1],
		"--mongo-listen", "127.0.0.1:"+ports[2],
		"--hold-timeout", "3s",
		"--log-format", "json")
	d.cmd.Args = append(d.cmd.Args, extra...)
	d.cmd.Env = cleanEnv()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		d.mongoURI = uri
		d.cmd.Env = append(d.cmd.Env, "MONGODB_URI="+uri)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.logFile, d.logFile
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s dev: %w", campusBin, err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	for _, host := range []string{"school.localhost", "nairobi.school.localhost", "accra.school.localhost"} {
		if err := d.waitFor(host, http.StatusOK, 120*time.Second); err != nil {
			d.stop()
			return nil, fmt.Errorf("%w (log: %s)", err, d.logPath)
		}
	}
	for _, tenant := range []string{"nairobi", "accra"} {
		if err := d.createSuperuser(tenant); err != nil {
			d.stop()
			return nil, err
		}
	}
	return d, nil
}

// cleanEnv is the environment without settings that would point campus at
// another registry or database.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CAMPUS_") || strings.HasPrefix(kv, "MONGODB_URI") || strings.HasPrefix(kv, "CONSUL_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (d *devSystem) stop() {
	if d == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			fmt.Fprintln(os.Stderr, "campus dev did not stop within 30s of SIGINT; killing it")
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	d.logFile.Close()
	os.RemoveAll(d.data)
}

// campus runs a short-lived campus command against this system.
func (d *devSystem) campus(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, campusBin, args...)
	cmd.Env = append(cleanEnv(), "CAMPUS_DATA="+d.data, "MONGODB_URI="+d.mongoURI)
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
func (d *devSystem) url(host, path string) string {
	return "http://" + host + ":" + d.proxyPort + path
}

// status fetches path at host through the proxy (Go does not resolve
// *.localhost: dial the proxy and set the Host).
func (d *devSystem) status(host, path string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+d.proxyPort+path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitFor polls host until it answers code.
func (d *devSystem) waitFor(host string, code int, within time.Duration) error {
	deadline := time.Now().Add(within)
	var got int
	var err error
	for time.Now().Before(deadline) {
		if got, err = d.status(host, "/"); err == nil && got == code {
			return nil
		}
		select {
		case werr := <-d.done:
			d.done <- werr
			return fmt.Errorf("campus dev exited: %v", werr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: want %d within %s, last got %d (%v)", host, code, within, got, err)
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
