package systemtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// SeededHosts are the hosts of the schools `campus dev` creates on its
// first run (default, nairobi, accra).
var SeededHosts = []string{"school.localhost", "nairobi.school.localhost", "accra.school.localhost"}

// DevOptions say how to start `campus dev`. Only Bin is required: the rest
// defaults to the embedded database and registry on free loopback ports.
type DevOptions struct {
	Bin  string // the campus binary (BuildCampus)
	Data string // --data; "": a new temporary folder (removed by Stop, or the test's TempDir with DevForTest)
	// Args are more flags, after the harness's --data, --listen,
	// --admin-listen, --mongo-listen and --log-format json (--registry
	// consul --no-seed, --tls, --hold-timeout 3s, ...).
	Args []string
	// Env is the whole environment; nil: CleanEnv() plus the test's own
	// MONGODB_URI when it has one (a real MongoDB, used instead of the
	// embedded server). ExtraEnv is added to it.
	Env      []string
	ExtraEnv []string
	Dir      string    // working directory
	Log      io.Writer // also receives the output (kept in memory anyway)
	// ReadyHosts must answer ReadyStatus at / through the proxy before
	// StartDev returns. Default: SeededHosts (none with --no-seed), 200
	// (301 with --tls, which redirects plain HTTP to HTTPS).
	ReadyHosts  []string
	ReadyStatus int
	// ReadyWithin bounds each readiness step (default 3 minutes: the
	// machine is busy and the first start compiles nothing but migrates).
	ReadyWithin time.Duration
	// StopSignal (default SIGINT) and StopTimeout (default 30 s) as in
	// Options.
	StopSignal  os.Signal
	StopTimeout time.Duration
}

// devTailBytes is how much of campus dev's log a failed test shows: its
// JSON lines are long, and the cause is often minutes before the end.
const devTailBytes = 64 << 10

// Dev is one running `campus dev`.
type Dev struct {
	*Process
	Bin       string
	Data      string
	ProxyAddr string // public listener, "127.0.0.1:PORT"
	ProxyPort string
	AdminAddr string // /healthz, /routes, /metrics
	MongoAddr string // --mongo-listen
	MongoURI  string // what its apps use: the embedded server, or MONGODB_URI
	ownData   bool
}

// CleanEnv is the test's environment without the settings that would point
// campus at another registry or database (CAMPUS_*, MONGODB_URI*,
// CONSUL_*).
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CAMPUS_") || strings.HasPrefix(kv, "MONGODB_URI") || strings.HasPrefix(kv, "CONSUL_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// StartDev starts `campus dev` and returns once it is ready (see
// DevOptions.ReadyHosts); on failure it stops what it started and the
// error carries the tail of the log.
func StartDev(ctx context.Context, o DevOptions) (*Dev, error) {
	if o.Bin == "" {
		return nil, fmt.Errorf("start campus dev: no binary")
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, fmt.Errorf("start campus dev: %w", err)
	}
	d := &Dev{Bin: o.Bin, Data: o.Data, ProxyAddr: addrs[0], AdminAddr: addrs[1], MongoAddr: addrs[2]}
	d.ProxyPort = d.ProxyAddr[strings.LastIndexByte(d.ProxyAddr, ':')+1:]
	d.MongoURI = "mongodb://" + d.MongoAddr
	if d.Data == "" {
		if d.Data, err = os.MkdirTemp("", "campus-dev-data-"); err != nil {
			return nil, fmt.Errorf("start campus dev: %w", err)
		}
		d.ownData = true
	}
	env := o.Env
	if env == nil {
		env = CleanEnv()
		if uri := os.Getenv("MONGODB_URI"); uri != "" {
			env = append(env, "MONGODB_URI="+uri)
		}
	}
	env = append(slices.Clip(env), o.ExtraEnv...)
	for _, kv := range env {
		if uri, ok := strings.CutPrefix(kv, "MONGODB_URI="); ok && uri != "" {
			d.MongoURI = uri
		}
	}
	argv := append([]string{o.Bin, "dev",
		"--data", d.Data,
		"--listen", d.ProxyAddr,
		"--admin-listen", d.AdminAddr,
		"--mongo-listen", d.MongoAddr,
		"--log-format", "json"}, o.Args...)
	if o.StopSignal == nil {
		o.StopSignal = syscall.SIGINT
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	d.Process, err = Start("campus dev", argv, Options{Dir: o.Dir, Env: env, Log: o.Log,
		StopSignal: o.StopSignal, StopTimeout: o.StopTimeout, TailBytes: devTailBytes})
	if err != nil {
		d.removeData()
		return nil, err
	}
	if err := d.waitReady(ctx, o); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *Dev) waitReady(ctx context.Context, o DevOptions) error {
	within := o.ReadyWithin
	if within <= 0 {
		within = 3 * time.Minute
	}
	hosts, status := o.ReadyHosts, o.ReadyStatus
	if hosts == nil && !slices.Contains(o.Args, "--no-seed") {
		hosts = SeededHosts
	}
	if status == 0 {
		status = http.StatusOK
		if slices.Contains(o.Args, "--tls") && !slices.Contains(o.Args, "--https-redirect=false") {
			status = http.StatusMovedPermanently
		}
	}
	step, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := d.WaitUntil(step, "campus dev admin /healthz on "+d.AdminAddr, func(ctx context.Context) error {
		code, _, err := get(ctx, "http://"+d.AdminAddr+"/healthz", "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/healthz: %d", code)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, host := range hosts {
		step, cancel := context.WithTimeout(ctx, within)
		err := d.WaitStatus(step, host, "/", status)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// Stop stops campus dev (StopSignal, then SIGKILL) and removes a data
// folder StartDev made. It returns an error when it had to kill.
func (d *Dev) Stop() error {
	if d == nil || d.Process == nil {
		return nil
	}
	err := d.Process.Stop()
	d.removeData()
	return err
}

func (d *Dev) removeData() {
	if d.ownData {
		os.RemoveAll(d.Data)
	}
}

// DevForTest starts campus dev for one test (its data in the test's
// TempDir unless o.Data says otherwise) and stops it when the test ends,
// failing the test if it had to be killed and logging its output's tail
// when the test failed.
func DevForTest(tb TB, o DevOptions) *Dev {
	tb.Helper()
	if o.Data == "" {
		o.Data = tb.TempDir()
	}
	d, err := StartDev(context.Background(), o)
	if err != nil {
		tb.Fatalf("start campus dev: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Errorf("%v", err)
		}
		if tb.Failed() {
			d.LogTail(tb)
		}
	})
	return d
}

// URL is a URL at host on the proxy's port, as a browser would use it
// (curl and Chromium send *.localhost to loopback by themselves).
func (d *Dev) URL(host, path string) string {
	return "http://" + host + ":" + d.ProxyPort + path
}

// Get fetches path at host through the proxy (Go does not resolve
// *.localhost: it dials the proxy and sets the Host), without following
// redirects, and returns the status and body.
func (d *Dev) Get(ctx context.Context, host, path string) (int, string, error) {
	return get(ctx, "http://"+d.ProxyAddr+path, host)
}

// WaitStatus polls path at host until it answers code; it gives up when
// ctx ends or campus dev exits.
func (d *Dev) WaitStatus(ctx context.Context, host, path string, code int) error {
	var got int
	var body string
	err := d.WaitUntil(ctx, host+path, func(ctx context.Context) error {
		var err error
		if got, body, err = d.Get(ctx, host, path); err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("want %d, got %d: %.300s", code, got, body)
		}
		return nil
	})
	return err
}

// Command is a short-lived campus command against this system: the clean
// environment with its data folder and database.
func (d *Dev) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	cmd.Env = append(CleanEnv(), "CAMPUS_DATA="+d.Data, "MONGODB_URI="+d.MongoURI)
	return cmd
}

var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(ctx context.Context, url, host string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}
