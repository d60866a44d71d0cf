package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/registry"
)

// compareConfig is what `campus bench --compare` needs from the bench set-up.
type compareConfig struct {
	dir         string          // scratch directory
	tenant      registry.Tenant // the bench tenant; its primary host is sent
	appAddr     string          // the app instance everyone forwards to
	path        string
	client      string // "wrk" or "loadgen"
	duration    time.Duration
	rounds      int
	concurrency int
	logger      *slog.Logger
	baseline    string // another campus binary whose proxy runs beside (before/after)
}

// benchTarget is one way to reach the app; pids are the processes whose
// CPU time is the proxy's (none for direct).
type benchTarget struct {
	name, addr string
	pids       func() []int
}

// runCompare measures GET cfg.path sent straight to the app, through a
// `campus proxy` process (its own process, like nginx and HAProxy, with
// its access log on) and through nginx and HAProxy when they are
// installed, rounds alternating between the targets so that the machine's
// noise falls on all of them.
func runCompare(ctx context.Context, e *env, cfg compareConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	targets := []benchTarget{{"direct", cfg.appAddr, nil}}

	self, err := campusBinary()
	if err != nil {
		return err
	}
	campusAddr, campusPid, stopCampus, err := startCampusProxy(ctx, cfg, self)
	if err != nil {
		return err
	}
	defer stopCampus()
	targets = append(targets, benchTarget{"campus proxy", campusAddr, func() []int { return []int{campusPid} }})
	if cfg.baseline != "" {
		dir := filepath.Join(cfg.dir, "baseline")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		base := cfg
		base.dir = dir
		addr, pid, stop, err := startCampusProxy(ctx, base, cfg.baseline)
		if err != nil {
			return fmt.Errorf("baseline %s: %w", cfg.baseline, err)
		}
		defer stop()
		targets = append(targets, benchTarget{"campus baseline", addr, func() []int { return []int{pid} }})
	}
	for _, other := range []struct {
		name, bin string
		start     func(context.Context, compareConfig, string) (string, int, func(), error)
	}{{"nginx", "nginx", startNginx}, {"haproxy", "haproxy", startHAProxy}} {
		bin, err := exec.LookPath(other.bin)
		if err != nil {
			fmt.Fprintf(e.stdout, "note: %s not installed (apt-get install -y %s): not measured\n", other.name, other.bin)
			continue
		}
		addr, pid, stop, err := other.start(ctx, cfg, bin)
		if err != nil {
			return fmt.Errorf("start %s: %w", other.name, err)
		}
		defer stop()
		targets = append(targets, benchTarget{other.name, addr, func() []int { return processTree(pid) }})
	}
	for _, tg := range targets[1:] {
		if err := waitRouted(ctx, tg.addr, cfg.tenant.PrimaryHost, cfg.path); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	fmt.Fprintf(e.stdout, "campus bench --compare: GET %s, %d rounds of %s per target, %d connections, client %s, GOMAXPROCS=%d\n\n",
		cfg.path, cfg.rounds, cfg.duration, cfg.concurrency, cfg.client, runtimeProcs())

	sums := make([]loadgen.Result, len(targets))
	proxyCPU := make([]time.Duration, len(targets))
	appCPU := make([]time.Duration, len(targets))
	me := os.Getpid()
	for range cfg.rounds {
		for i, tg := range targets {
			var pids []int
			if tg.pids != nil {
				pids = tg.pids()
			}
			p0, a0 := cpuTime(pids...), cpuTime(me)
			res, err := measure(ctx, cfg, tg.addr)
			if err != nil {
				return fmt.Errorf("bench %s: %w", tg.name, err)
			}
			proxyCPU[i] += cpuTime(pids...) - p0
			appCPU[i] += cpuTime(me) - a0
			sums[i] = merge(sums[i], res)
		}
	}
	rows := make([]loadgen.Row, len(targets))
	for i, tg := range targets {
		rows[i] = loadgen.Row{Name: tg.name, Result: sums[i]}
	}
	if err := loadgen.WriteTable(e.stdout, rows); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	perReq := func(d time.Duration, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fµs", float64(d)/float64(n)/float64(time.Microsecond))
	}
	fmt.Fprintf(e.stdout, "CPU time per request (from /proc; the app runs in this process):\n")
	for i, tg := range targets {
		proxy := "-"
		if tg.pids != nil {
			proxy = perReq(proxyCPU[i], sums[i].Requests)
		}
		fmt.Fprintf(e.stdout, "  %-14s proxy %-9s app %s\n", tg.name, proxy, perReq(appCPU[i], sums[i].Requests))
	}
	fmt.Fprintln(e.stdout)
	for i, tg := range targets[1:] {
		s := sums[i+1]
		fmt.Fprintf(e.stdout, "%-14s proxied/direct: throughput %.2f, p50 latency %.2f, p99 latency %.2f\n",
			tg.name, s.RPS/sums[0].RPS, ratio(s.P50, sums[0].P50), ratio(s.P99, sums[0].P99))
	}
	return nil
}

// cpuTime is the user plus system CPU time of processes so far, from
// /proc/PID/stat (Linux; 0 elsewhere), in clock ticks of 10ms.
func cpuTime(pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}

// processTree is pid and its direct children (nginx's workers).
func processTree(pid int) []int {
	out := []int{pid}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// measure runs one round against addr with the configured client.
func measure(ctx context.Context, cfg compareConfig, addr string) (loadgen.Result, error) {
	url := "http://" + addr + cfg.path
	if cfg.client == "loadgen" {
		return loadgen.Run(ctx, loadgen.Config{Target: url, Host: cfg.tenant.PrimaryHost,
			Concurrency: cfg.concurrency, Duration: cfg.duration})
	}
	out, err := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(cfg.concurrency),
		"-d"+strconv.Itoa(max(1, int(cfg.duration.Seconds())))+"s", "--latency",
		"-H", "Host: "+cfg.tenant.PrimaryHost, url).CombinedOutput()
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkPercentile = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkRequests   = regexp.MustCompile(`(?m)^\s+(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkRPS        = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkMax        = regexp.MustCompile(`(?m)^[ \t]+Latency[ \t]+\S+[ \t]+\S+[ \t]+([\d.]+)(us|ms|s)`)
	wrkNon2xx     = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkErrors     = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrkDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[unit]
	return time.Duration(f * float64(scale))
}

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (loadgen.Result, error) {
	var r loadgen.Result
	m := wrkRequests.FindStringSubmatch(out)
	rps := wrkRPS.FindStringSubmatch(out)
	if m == nil || rps == nil {
		return r, fmt.Errorf("unexpected wrk output:\n%s", out)
	}
	r.Requests, _ = strconv.Atoi(m[1])
	r.Elapsed = wrkDuration(m[2], m[3])
	r.RPS, _ = strconv.ParseFloat(rps[1], 64)
	for _, p := range wrkPercentile.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(p[2], p[3])
		switch p[1] {
		case "50":
			r.P50 = d
		case "90":
			r.P90 = d
		case "99":
			r.P99 = d
		}
	}
	if m := wrkMax.FindStringSubmatch(out); m != nil {
		r.Max = wrkDuration(m[1], m[2])
	}
	if n := wrkNon2xx.FindStringSubmatch(out); n != nil {
		r.Non2xx, _ = strconv.Atoi(n[1])
	}
	if n := wrkErrors.FindStringSubmatch(out); n != nil {
		for _, s := range n[1:] {
			v, _ := strconv.Atoi(s)
			r.Errors += v
		}
	}
	return r, nil
}

// startCampusProxy runs `bin proxy` (a campus binary) over an embedded registry holding
// the bench tenant and its instance, logging at info (the access log on)
// to a file.
func startCampusProxy(ctx context.Context, cfg compareConfig, bin string) (string, int, func(), error) {
	ro := registryOptions{kind: "embedded", data: filepath.Join(cfg.dir, "registry")}
	reg, err := ro.open(ctx, nil, cfg.logger, nil)
	if err != nil {
		return "", 0, nil, err
	}
	defer reg.Close()
	if _, err := reg.CreateTenant(ctx, cfg.tenant); err != nil {
		return "", 0, nil, fmt.Errorf("create bench tenant: %w", err)
	}
	if err := reg.RegisterInstance(ctx, registry.Instance{ID: "bench-1", Tenant: cfg.tenant.Name, Addr: cfg.appAddr, Healthy: true}); err != nil {
		return "", 0, nil, err
	}
	addr, admin, err := twoFreeAddrs()
	if err != nil {
		return "", 0, nil, err
	}
	logFile, err := os.Create(filepath.Join(cfg.dir, "campus-proxy.log"))
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "proxy", "--registry", "embedded", "--data", ro.data,
		"--listen", addr, "--admin-listen", admin, "--log-level", "info", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", 0, nil, fmt.Errorf("start campus proxy: %w", err)
	}
	return addr, cmd.Process.Pid, func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logFile.Close()
	}, nil
}

// startNginx runs nginx in the foreground with upstream keep-alive and a
// buffered access log (its tuned, usual production shape).
func startNginx(ctx context.Context, cfg compareConfig, bin string) (string, int, func(), error) {
	dir := filepath.Join(cfg.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", 0, nil, err
	}
	addr, _, err := twoFreeAddrs()
	if err != nil {
		return "", 0, nil, err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log %[1]s/access.log combined buffer=64k flush=1s;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	upstream app { server %[2]s; keepalive 128; }
	server { listen %[3]s default_server; return 404; }
	server {
		listen %[3]s;
		server_name %[4]s;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $remote_addr;
		}
	}
}
`, dir, cfg.appAddr, addr, cfg.tenant.PrimaryHost)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", 0, nil, err
	}
	pid, stop := startChild(ctx, bin, "-p", dir, "-c", path)
	return addr, pid, stop, nil
}

// startHAProxy runs HAProxy in the foreground, Host-routed, reusing
// upstream connections. It logs nothing (it logs only to syslog, when
// told).
func startHAProxy(ctx context.Context, cfg compareConfig, bin string) (string, int, func(), error) {
	dir := filepath.Join(cfg.dir, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, nil, err
	}
	addr, _, err := twoFreeAddrs()
	if err != nil {
		return "", 0, nil, err
	}
	conf := fmt.Sprintf(`global
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	http-reuse always
frontend fe
	bind %s
	acl bench hdr(host) -i %s
	use_backend app if bench
	default_backend none
backend app
	server a1 %s
backend none
	http-request deny deny_status 404
`, addr, cfg.tenant.PrimaryHost, cfg.appAddr)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", 0, nil, err
	}
	pid, stop := startChild(ctx, bin, "-db", "-f", path)
	return addr, pid, stop, nil
}

// startChild starts a foreground server; the returned function stops it.
// A server that fails to start shows up in waitRouted.
func startChild(ctx context.Context, bin string, args ...string) (int, func()) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return 0, func() {}
	}
	return cmd.Process.Pid, func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// waitRouted waits until a GET of path with host through addr answers 200.
func waitRouted(ctx context.Context, addr, host, path string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer %s on %s within 30s: %w", addr, path, host, last)
}
