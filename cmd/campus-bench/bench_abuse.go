package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/internal/h2flood"
	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/proxy"
)

// runBenchAbuse is `campus-bench abuse` (issue 25): against `campus dev
// --tls` (its seeded schools), an HTTP/2 rapid-reset flood and then a
// malformed-body flood at nairobi, each for --duration, while accra's
// public page is measured; the same before the floods (quiet). With
// --baseline, the same run against another campus binary first, for
// before/after in one run.
func runBenchAbuse(ctx context.Context, e *env, args []string) error {
	fs := newFlags("abuse", "", `Flood one school of a 'campus dev --tls' with cheap abuse, one kind at a time, while another
school is measured: HTTP/2 rapid reset (HEADERS + RST_STREAM over TLS, reconnecting after each
GOAWAY) and POSTs with a malformed chunked body. Prints, per flood: requests that reached the
flooded school's app (its campus_app_requests_total), lines and bytes campus dev wrote (but those
of the measured school's own requests), the
campus dev process's CPU (the proxy, with the embedded database and registry; the apps are its
children), and the other school's p50/p99 quiet and under the flood. The floods run in a process
of their own (campus-bench abuse-flood), optionally at a lower priority (--flooder-nice) or in a
cgroup v1 cpu group with a quota (--flooder-cpu): a remote attacker's CPU is not the server's.
Before the floods, --first-pages loads of accra's public page by a new browser (a new HTTP/2
connection: TLS handshake, the page, then its /static assets at once) measure what a visitor's
first page costs.`)
	var (
		duration = fs.Duration("duration", 10*time.Second, "length of the quiet measurement and of each flood")
		conns    = fs.Int("conns", 2, "concurrent flooding connections per kind of abuse")
		clients  = fs.Int("concurrency", 4, "concurrent clients measuring the other school")
		baseline = fs.String("baseline", "", "also run this other campus binary first (e.g. built from the commit before), for before/after in one run")
		resets   = fs.Float64("reset-rate", 40000, "reset streams per second the rapid-reset flood offers, in all (issue 25 saw 213k in 5 s from two connections)")
		from     = fs.String("flood-from", "127.0.0.2", "loopback IP address the floods come from (the measured clients use 127.0.0.1; give 127.0.0.1 to measure clients behind the attacker's address)")
		addrs    = fs.Int("flood-addrs", 1, "rapid reset: each new flooding connection from the next of this many loopback addresses counted up from --flood-from (a botnet; 1: one address)")
		rounds   = fs.Int("rounds", 1, "runs of every binary, alternating (before, after, before, after, ...)")
		pages    = fs.Int("first-pages", 50, "first-page loads by a new browser measured before the floods (0: none)")
		kinds    = fs.String("floods", "rapid-reset,bad-chunks", "the floods run, in order, comma-separated: rapid-reset, bad-chunks")
		fl       flooder
	)
	fs.IntVar(&fl.nice, "flooder-nice", 0, "run the flooder process at this nice value (19: only CPU nobody else wants)")
	fs.Float64Var(&fl.cpus, "flooder-cpu", 0, "run the flooder process in a cgroup v1 cpu group with this quota in CPUs (e.g. 0.5; needs root)")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	floods, err := abuseFloods(*kinds)
	if err != nil {
		return err
	}
	self, err := campusBinary()
	if err != nil {
		return err
	}
	if err := fl.setup(); err != nil {
		return err
	}
	defer fl.close()
	type run struct{ name, bin string }
	runs := []run{{"after", self}}
	if *baseline != "" {
		b, err := filepath.Abs(*baseline)
		if err != nil {
			return err
		}
		runs = []run{{"before", b}, {"after", self}}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(e.stdout, "campus-bench abuse: %s per phase, %d flooding connections per kind (rapid reset at %.0f streams/s from %d address(es)), %s, %d clients on accra's public page, GOMAXPROCS=%d, load %s\n",
		*duration, *conns, *resets, *addrs, fl.describe(), *clients, runtimeProcs(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(e.stdout, "%-7s %-13s %9s %9s %9s %8s %8s %8s %9s %9s %9s %9s\n",
		"binary", "phase", "sent", "handled", "to app", "GOAWAYs", "lines", "KB", "dev CPU", "accra p50", "accra p99", "goal p99")
	for range *rounds {
		for _, r := range runs {
			if err := abuseRun(ctx, e, &fl, r.name, r.bin, floods, *duration, *conns, *clients, *pages, *resets, *from, *addrs); err != nil {
				return fmt.Errorf("%s (%s): %w", r.name, r.bin, err)
			}
		}
	}
	return nil
}

// lineCounter counts the lines a process writes that do not mention skip
// (the measured school, whose own request lines are not abuse).
type lineCounter struct {
	skip         string
	lines, bytes atomic.Int64

	mu      sync.Mutex
	partial []byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if !bytes.Contains(data[:i], []byte(c.skip)) {
			c.lines.Add(1)
			c.bytes.Add(int64(i + 1))
		}
		data = data[i+1:]
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

// abuseFlood is one kind of flood of the bench: its row's name and the
// flooder's kind.
type abuseFlood struct{ name, kind string }

// abuseFloods parses --floods.
func abuseFloods(list string) ([]abuseFlood, error) {
	known := map[string]string{"rapid-reset": "rapid reset", "bad-chunks": "bad chunks"}
	var floods []abuseFlood
	for k := range strings.SplitSeq(list, ",") {
		k = strings.TrimSpace(k)
		name, ok := known[k]
		if !ok {
			return nil, fmt.Errorf("--floods: unknown flood %q (rapid-reset, bad-chunks)", k)
		}
		floods = append(floods, abuseFlood{name, k})
	}
	return floods, nil
}

func abuseRun(ctx context.Context, e *env, fl *flooder, name, bin string, floods []abuseFlood, d time.Duration, conns, clients, pages int, resetRate float64, from string, addrs int) error {
	port, err := systemtest.FreePort()
	if err != nil {
		return err
	}
	tlsAddr := "127.0.0.1:" + strconv.Itoa(port)
	const victim, other = "nairobi.school.localhost", "accra.school.localhost"
	out := lineCounter{skip: "accra"}
	dev, err := systemtest.StartDev(ctx, systemtest.DevOptions{Bin: bin, Log: &out,
		Args: []string{"--tls", "--tls-listen", tlsAddr, "--idle-timeout", "0"}})
	if err != nil {
		return err
	}
	defer dev.Stop()
	caFile := filepath.Join(dev.Data, "ca", "ca.pem")
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tlsCfg := &tls.Config{RootCAs: roots}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsCfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: clients,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
		},
	}}
	measure := func() (loadgen.Result, error) {
		return loadgen.Run(ctx, loadgen.Config{Target: "https://" + other + ":" + strconv.Itoa(port) + "/",
			Concurrency: clients, Duration: d, Client: client})
	}
	appCount := func() float64 { return appRequests(ctx, dev.AdminAddr, victim) }

	load := func() string {
		l, _ := os.ReadFile("/proc/loadavg")
		return strings.Fields(string(l))[0]
	}
	if pages > 0 {
		load0 := load()
		first, err := firstPages(ctx, pages, "https://"+other+":"+strconv.Itoa(port), tlsAddr, tlsCfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%-7s %-13s %9d %9s %9s %8s %8s %8s %9s %9s %9s %9s\n", name, "first page", pages, "-", "-", "-", "-", "-", "-",
			ms(first.P50), ms(first.P99), "load "+load0+"->"+load())
	}
	load0 := load()
	quiet, err := measure()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%-7s %-13s %9s %9s %9s %8s %8s %8s %9s %9s %9s %9s\n", name, "quiet", "-", "-", "-", "-", "-", "-", "-",
		ms(quiet.P50), ms(quiet.P99), "load "+load0+"->"+load())
	goal := 2*quiet.P99 + 20*time.Millisecond
	for _, f := range floods {
		load0 := load()
		app0, lines0, bytes0, cpu0 := appCount(), out.lines.Load(), out.bytes.Load(), cpuTime(dev.Pid())
		handled0, goaways0 := proxyCount(ctx, dev.AdminAddr, proxy.MetricRequests, proxy.LabelTenant+`="nairobi"`), proxyCount(ctx, dev.AdminAddr, proxy.MetricResetFloods, "")
		wait, err := fl.start(ctx, floodSpec{kind: f.kind, addr: tlsAddr, from: from, addrs: addrs, host: victim, conns: conns,
			rate: resetRate, duration: d, ca: caFile})
		if err != nil {
			return err
		}
		res, err := measure()
		sent, ferr := wait()
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
		cpu := cpuTime(dev.Pid()) - cpu0
		// Let the last requests and the log buffers (flushed every
		// second) land before counting.
		time.Sleep(1500 * time.Millisecond)
		verdict := "ok"
		if res.P99 > goal {
			verdict = "MISSED"
		}
		fmt.Fprintf(e.stdout, "%-7s %-13s %9d %9.0f %9.0f %8.0f %8d %8d %8.0f%% %9s %9s %9s  load %s->%s\n", name, f.name, sent,
			proxyCount(ctx, dev.AdminAddr, proxy.MetricRequests, proxy.LabelTenant+`="nairobi"`)-handled0, appCount()-app0,
			proxyCount(ctx, dev.AdminAddr, proxy.MetricResetFloods, "")-goaways0,
			out.lines.Load()-lines0, (out.bytes.Load()-bytes0)/1024,
			100*cpu.Seconds()/d.Seconds(), ms(res.P50), ms(res.P99), ms(goal)+" "+verdict, load0, load())
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }

// appRequests sums campus_app_requests_total of the app instances of host
// (but health checks and metrics reads), read from their own /metrics
// (found through the proxy's /routes).
func appRequests(ctx context.Context, adminAddr, host string) float64 {
	var routes proxy.Routes
	if err := getJSON(ctx, "http://"+adminAddr+"/routes", &routes); err != nil {
		return -1
	}
	var total float64
	for _, in := range routes.Hosts[host].Instances {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr+"/metrics", nil)
		if err != nil {
			return -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, app.MetricRequests+"{"); ok {
				if labels, v, ok := strings.Cut(rest, "} "); ok && !probeRoute(labels) {
					f, _ := strconv.ParseFloat(v, 64)
					total += f
				}
			}
		}
		resp.Body.Close()
	}
	return total
}

// proxyCount sums the proxy's counter metric (read from its admin
// /metrics) over the series whose labels mention label ("": all).
func proxyCount(ctx context.Context, adminAddr, metric, label string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, v := line[:i], line[i+1:]
		base, labels, _ := strings.Cut(name, "{")
		if base == metric && strings.Contains(labels, label) {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// probeRoute reports whether a request counter's labels are those of the
// supervisor's health checks or of the bench's own /metrics reads.
func probeRoute(labels string) bool {
	for _, r := range []string{"/healthz", "/readyz", "/metrics"} {
		if strings.Contains(labels, r+`"`) {
			return true
		}
	}
	return false
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// floodRapidReset runs conns rapid-reset connections until ctx ends, each
// reconnecting after a GOAWAY or a closed connection, perSecond streams in
// all (the same offered load for every binary), from the address from (or,
// with addrs > 1, from the next of addrs addresses counted up from from,
// as a botnet would); it returns the streams sent.
func floodRapidReset(ctx context.Context, addr, from string, addrs int, host string, conns int, perSecond float64, roots *x509.CertPool) int64 {
	var sent, dials atomic.Int64
	base := netip.MustParseAddr(from).As4()
	next := func() string {
		k := uint32(dials.Add(1)-1) % uint32(max(addrs, 1))
		n := binary.BigEndian.Uint32(base[:]) + k
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], n)
		return netip.AddrFrom4(b).String()
	}
	var wg sync.WaitGroup
	pace := rate.NewLimiter(rate.Limit(perSecond), 100)
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				res, err := h2flood.Run(ctx, h2flood.Options{Addr: addr, From: next(), Host: host, Streams: 1 << 30,
					TLS: &tls.Config{RootCAs: roots}, Pace: pace})
				sent.Add(int64(res.Streams))
				if err != nil && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond) // refused: try again shortly
				}
			}
		})
	}
	wg.Wait()
	return sent.Load()
}

// floodMalformed sends POST /admin/login/ with a malformed chunked body
// (0x0, an overflowing hex size or a bare LF, in turn) over HTTP/1.1 TLS
// connections from the address from until ctx ends; it returns the
// requests sent.
func floodMalformed(ctx context.Context, addr, from, host string, conns int, cfg *tls.Config) int64 {
	bodies := []string{"0x0\r\n\r\n", "5\r\nuser=\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n", "5\nuser=\n0\n\n"}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c := cfg.Clone()
			c.ServerName, c.NextProtos = host, []string{"http/1.1"}
			for i := 0; ctx.Err() == nil; i++ {
				conn, err := (&tls.Dialer{Config: c, NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}}).DialContext(ctx, "tcp", addr)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // refused: try again shortly, as the rapid-reset flood does
					continue
				}
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(conn, "POST /admin/login/ HTTP/1.1\r\nHost: "+host+
					"\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"+bodies[i%len(bodies)])
				if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				conn.Close()
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	return sent.Load()
}
