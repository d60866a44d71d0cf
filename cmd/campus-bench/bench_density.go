package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
)

// runBenchDensity: `campus bench density` (issue 12).
func runBenchDensity(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench density", "", `How many schools fit on this machine: registers --tenants tenants (idle: no process),
wakes --busy of them and keeps them under light load (one request per --interval each) for
--duration, then prints the memory of the whole system (RSS and PSS of this process, which
holds the embedded database, registry, supervisor and proxy, plus every app), the private
memory per app, the latency at the busy tenants, and the CPU the system uses when no request
comes (health checks only). Same system as 'campus bench coldstart'. Only the busy tenants get a
database (the embedded server keeps one SQLite file per database).`)
	var (
		mo        mongoOptions
		tenants   = fs.Int("tenants", 10000, "tenants registered")
		busy      = fs.Int("busy", 200, "tenants woken and kept under light load")
		interval  = fs.Duration("interval", time.Second, "time between two requests of one busy tenant")
		duration  = fs.Duration("duration", 30*time.Second, "length of the light load")
		idleFor   = fs.Duration("idle-sample", 10*time.Second, "length of the idle CPU sample")
		path      = fs.String("path", "/", "path requested")
		maxStarts = fs.Int("max-starts", supervisor.DefaultMaxStarts, "the supervisor's start cap")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *busy < 1 || *tenants < *busy {
		return usageErr("want 1 <= --busy <= --tenants")
	}
	s, err := startScaleSystem(ctx, scaleSystemConfig{tenants: *tenants, idleTimeout: time.Hour,
		maxStarts: *maxStarts, holdTimeout: 5 * time.Minute, migrate: *busy, mo: mo, logger: benchScaleLogger(e), progress: e.stderr})
	if err != nil {
		return err
	}
	defer s.close()
	idleMem := memory(s.pids())

	// Wake the busy ones, all at once.
	hot := s.tenants[:*busy]
	fmt.Fprintf(e.stderr, "waking %d tenants...\n", *busy)
	wakeStart := time.Now()
	var wg sync.WaitGroup
	for _, t := range hot {
		wg.Go(func() { _, _, _ = s.get(ctx, t, *path) })
	}
	wg.Wait()
	woken := time.Since(wakeStart)
	if err := s.waitStates(ctx, hot, 5*time.Minute, supervisor.StateReady); err != nil {
		return err
	}

	fmt.Fprintf(e.stderr, "light load for %s...\n", *duration)
	var (
		mu     sync.Mutex
		lat    durations
		failed int
	)
	s.lightLoad(ctx, hot, *path, *interval, 0, *duration, false, func(_ registry.Tenant, d time.Duration, code int, err error, _ bool) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil || code != http.StatusOK {
			failed++
		} else {
			lat = append(lat, d)
		}
	})
	pids := s.pids()
	busyMem := memory(pids)

	fmt.Fprintf(e.stderr, "idle CPU for %s...\n", *idleFor)
	time.Sleep(2 * time.Second) // let the last requests settle
	before, t0 := cpuTicks(pids), time.Now()
	time.Sleep(*idleFor)
	after, t1 := cpuTicks(pids), time.Now()
	cpu := float64(after-before) / ticksPerSecond / t1.Sub(t0).Seconds()

	fmt.Fprintf(e.stdout, "campus bench density: %d tenants registered, %d busy (one GET %s per %s each, %s), GOMAXPROCS=%d\n\n",
		*tenants, *busy, *path, *interval, *duration, runtimeProcs())
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "measure\tvalue\t")
	fmt.Fprintf(w, "app processes running\t%d\t\n", len(pids)-1)
	fmt.Fprintf(w, "wake of the busy tenants (all at once)\t%s\t\n", msf(woken))
	fmt.Fprintf(w, "requests at busy tenants (200 / failed)\t%d / %d\t\n", len(lat), failed)
	fmt.Fprintf(w, "latency p50 / p99 / max\t%s / %s / %s\t\n", msf(lat.pct(50)), msf(lat.pct(99)), msf(lat.max()))
	fmt.Fprintf(w, "whole system RSS / PSS, all idle\t%s / %s\t\n", mib(idleMem.rss), mib(idleMem.pss))
	fmt.Fprintf(w, "whole system RSS / PSS, busy running\t%s / %s\t\n", mib(busyMem.rss), mib(busyMem.pss))
	fmt.Fprintf(w, "  of which this process (db, registry, supervisor, proxy)\t%s / %s\t\n", mib(busyMem.self.rss), mib(busyMem.self.pss))
	if n := len(pids) - 1; n > 0 {
		fmt.Fprintf(w, "per app: RSS / PSS / private (mean)\t%s / %s / %s\t\n",
			mib(busyMem.apps.rss/int64(n)), mib(busyMem.apps.pss/int64(n)), mib(busyMem.apps.private/int64(n)))
	}
	fmt.Fprintf(w, "idle CPU (no requests), cores\t%.3f\t\n", cpu)
	if err := w.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return errBenchFailed
	}
	return nil
}

// mem is memory in bytes, from /proc/PID/smaps_rollup.
type mem struct{ rss, pss, private int64 }

func (m *mem) add(o mem) { m.rss += o.rss; m.pss += o.pss; m.private += o.private }

type systemMem struct {
	mem
	self, apps mem
}

// memory sums smaps_rollup over pids; the first is this process.
func memory(pids []int) systemMem {
	var out systemMem
	for i, pid := range pids {
		m := smapsRollup(pid)
		out.add(m)
		if i == 0 {
			out.self = m
		} else {
			out.apps.add(m)
		}
	}
	return out
}

func smapsRollup(pid int) mem {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return mem{}
	}
	defer f.Close()
	var m mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Rss":
			m.rss += kb << 10
		case "Pss":
			m.pss += kb << 10
		case "Private_Clean", "Private_Dirty":
			m.private += kb << 10
		}
	}
	return m
}

// ticksPerSecond is USER_HZ, 100 on Linux.
const ticksPerSecond = 100

// cpuTicks sums user and system time of pids, in clock ticks.
func cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is the state (field 3); utime is field 14
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += u + st
	}
	return sum
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
