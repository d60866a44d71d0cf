package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/campus-saas/campus/internal/loadgen"
)

// A remote attacker's CPU is not the server's. `campus-bench abuse` can
// run its floods in a process of their own (`campus-bench abuse-flood`),
// at a lower priority (--flooder-nice) and/or in a cgroup v1 cpu group
// with a quota (--flooder-cpu), so that the flooder does not take the CPU
// of the system under test; the table's header says which.

// flooder says how the floods run.
type flooder struct {
	nice   int     // 0: the parent's priority
	cpus   float64 // cgroup quota in CPUs; 0: none
	cgroup string  // the cpu cgroup made for the quota; "" without
}

// describe words the flooder's place for the table's header.
func (f *flooder) describe() string {
	var parts []string
	if f.nice != 0 {
		parts = append(parts, "nice "+strconv.Itoa(f.nice))
	}
	if f.cpus > 0 {
		parts = append(parts, fmt.Sprintf("cgroup v1 cpu quota %.2f CPU", f.cpus))
	}
	if len(parts) == 0 {
		return "flooder in its own process, same priority"
	}
	return "flooder in its own process, " + strings.Join(parts, ", ")
}

// setup makes the cpu cgroup of the quota.
func (f *flooder) setup() error {
	if f.cpus <= 0 {
		return nil
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", fmt.Sprintf("campus-bench-flood-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("making the flooder's cpu cgroup (cgroup v1, as root): %w", err)
	}
	f.cgroup = dir
	const period = 100000
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644); err != nil {
		return fmt.Errorf("setting the flooder's cpu period: %w", err)
	}
	quota := strconv.Itoa(int(f.cpus * period))
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(quota), 0o644); err != nil {
		return fmt.Errorf("setting the flooder's cpu quota: %w", err)
	}
	return nil
}

// close removes the cgroup (its processes have ended).
func (f *flooder) close() {
	if f.cgroup != "" {
		_ = os.Remove(f.cgroup)
	}
}

// floodSpec is one flood, as the flooder process takes it.
type floodSpec struct {
	kind     string // "rapid-reset" or "bad-chunks"
	addr     string
	from     string
	addrs    int
	host     string
	conns    int
	rate     float64
	duration time.Duration
	ca       string // the CA's PEM file
}

func (s floodSpec) args() []string {
	return []string{"abuse-flood", "--kind", s.kind, "--addr", s.addr, "--from", s.from, "--addrs", strconv.Itoa(s.addrs), "--host", s.host,
		"--conns", strconv.Itoa(s.conns), "--rate", strconv.FormatFloat(s.rate, 'f', -1, 64),
		"--duration", s.duration.String(), "--ca", s.ca}
}

// start runs one flood in a process of its own; wait returns the requests
// it sent.
func (f *flooder) start(ctx context.Context, s floodSpec) (wait func() (int64, error), err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	name, args := self, s.args()
	if f.nice != 0 {
		name, args = "nice", append([]string{"-n", strconv.Itoa(f.nice), self}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the flooder: %w", err)
	}
	if f.cgroup != "" {
		// cgroup.procs moves every thread of the process.
		if err := os.WriteFile(filepath.Join(f.cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("moving the flooder into its cgroup: %w", err)
		}
	}
	return func() (int64, error) {
		if err := cmd.Wait(); err != nil {
			return 0, fmt.Errorf("the flooder: %w: %s", err, strings.TrimSpace(out.String()))
		}
		var sent int64
		if _, err := fmt.Sscanf(strings.TrimSpace(out.String()), "sent %d", &sent); err != nil {
			return 0, fmt.Errorf("the flooder said %q", out.String())
		}
		return sent, nil
	}, nil
}

// runBenchAbuseFlood is `campus-bench abuse-flood`: the flooder process of
// `campus-bench abuse`. It prints "sent N".
func runBenchAbuseFlood(ctx context.Context, e *env, args []string) error {
	fs := newFlags("abuse-flood", "", `The flooder process of 'campus-bench abuse' (run by it): one kind of flood for --duration, then
"sent N" on standard output.`)
	var (
		kind     = fs.String("kind", "rapid-reset", "rapid-reset or bad-chunks")
		addr     = fs.String("addr", "", "the TLS address of campus dev (loopback)")
		from     = fs.String("from", "127.0.0.2", "loopback IP address the flood comes from")
		addrs    = fs.Int("addrs", 1, "rapid reset: each new connection from the next of this many addresses counted up from --from")
		host     = fs.String("host", "nairobi.school.localhost", "the flooded school's host")
		conns    = fs.Int("conns", 2, "concurrent flooding connections")
		rate     = fs.Float64("rate", 40000, "reset streams per second, in all (rapid reset)")
		duration = fs.Duration("duration", 10*time.Second, "length of the flood")
		ca       = fs.String("ca", "", "PEM file of the CA of campus dev's certificates")
	)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(*ca)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in " + *ca)
	}
	fctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var sent int64
	switch *kind {
	case "rapid-reset":
		sent = floodRapidReset(fctx, *addr, *from, *addrs, *host, *conns, *rate, roots)
	case "bad-chunks":
		sent = floodMalformed(fctx, *addr, *from, *host, *conns, &tls.Config{RootCAs: roots})
	default:
		return usageErr("--kind %q: rapid-reset or bad-chunks", *kind)
	}
	fmt.Fprintf(e.stdout, "sent %d\n", sent)
	return nil
}

// staticRef finds a page's /static assets.
var staticRef = regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`)

// firstPages loads base's public page n times as a new browser does: a new
// HTTP/2 connection (TLS handshake), the page, then every /static asset it
// names at once over that connection. It returns the times to the last
// byte of the last asset.
func firstPages(ctx context.Context, n int, base, tlsAddr string, cfg *tls.Config) (loadgen.Result, error) {
	var times []time.Duration
	for range n {
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
			}}
		client := &http.Client{Transport: tr}
		get := func(url string) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2) {
				err = fmt.Errorf("GET %s: %s over HTTP/%d, want 200 over HTTP/2", url, resp.Status, resp.ProtoMajor)
			}
			return body, err
		}
		start := time.Now()
		page, err := get(base + "/")
		if err != nil {
			tr.CloseIdleConnections()
			return loadgen.Result{}, fmt.Errorf("first page: %w", err)
		}
		var g errgroup.Group
		for _, m := range staticRef.FindAllSubmatch(page, -1) {
			g.Go(func() error { _, err := get(base + string(m[1])); return err })
		}
		err = g.Wait()
		times = append(times, time.Since(start))
		tr.CloseIdleConnections()
		if err != nil {
			return loadgen.Result{}, fmt.Errorf("first page's assets: %w", err)
		}
	}
	slices.Sort(times)
	pct := func(q float64) time.Duration { return times[min(len(times)-1, int(q*float64(len(times))))] }
	return loadgen.Result{P50: pct(0.50), P99: pct(0.99)}, nil
}
