package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// inUseFor is how long a woken school is used (pages and searches) before
// its RSS in use is read: past the search index's build and the load's
// garbage handed back, with the garbage collector's own headroom.
const inUseFor = 4 * time.Second

// useAndMeasure reads the school's pages and varied searches for inUseFor
// (the idle stop cannot take it meanwhile), then reads its app's RSS and
// anonymous RSS (the part that is its own: the binary's pages are shared).
func (cs *coldSystem) useAndMeasure(ctx context.Context, c *coldClass, n int) {
	s := cs.sys
	until := time.Now().Add(inUseFor)
	for i := 0; time.Now().Before(until) && ctx.Err() == nil; i++ {
		path := fmt.Sprintf("/?page=%d", 1+i%40)
		if i%2 == 1 {
			path = "/?q=" + url.QueryEscape(benchFirst[(i+n)%len(benchFirst)]+" "+benchSecond[i%len(benchSecond)])
		}
		_, _, _ = s.get(ctx, c.t, path)
		time.Sleep(20 * time.Millisecond)
	}
	addr, rollup := "", ""
	for _, st := range s.sup.Status() {
		if st.Tenant == c.t.Name && st.PID != 0 {
			rss, anon := rssAnonOf(st.PID)
			c.rssUse = append(c.rssUse, rss)
			c.anonUse = append(c.anonUse, anon)
			addr, rollup = st.Addr, smapsRollupOf(st.PID)
		}
	}
	// Where the anonymous memory is, from the app's Go runtime (its own
	// /metrics, not through the proxy).
	if body, code, err := getBody(ctx, "http://"+addr+"/metrics", c.t.PrimaryHost); err == nil && code == http.StatusOK {
		var parts []string
		for _, m := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_next_gc_bytes", "go_memstats_heap_inuse_bytes",
			"go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes",
			"go_gc_gogc_percent"} {
			for line := range strings.SplitSeq(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, m+" "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					if pct, ok := strings.CutPrefix(m, "go_gc_"); ok { // GOGC, as the app set it (store/modelgc.go)
						parts = append(parts, fmt.Sprintf("%s %.0f", pct, f))
						continue
					}
					parts = append(parts, fmt.Sprintf("%s %.1f MB", strings.TrimSuffix(strings.TrimPrefix(m, "go_memstats_"), "_bytes"), f/1e6))
				}
			}
		}
		c.memstats = strings.Join(parts, ", ")
	}
	c.memstats += "; " + rollup
}

// smapsRollupOf words where a process's resident pages are: file-backed
// (the binary's pages, shared with every app of the same binary when
// clean) against anonymous (its own heap, stacks, runtime), and its
// proportional share (Pss).
func smapsRollupOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return ""
	}
	var parts []string
	for line := range strings.SplitSeq(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		switch name := strings.TrimSuffix(fs[0], ":"); name {
		case "Rss", "Pss", "Pss_File", "Pss_Anon", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous":
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			parts = append(parts, fmt.Sprintf("%s %.1f MB", name, float64(kb)/1e3))
		}
	}
	return strings.Join(parts, ", ") + "; by mapping: " + smapsByMapping(pid)
}

// smapsByMapping words the resident pages of pid by mapping: the
// binary's segments by their permissions (r-xp: code, r--p: read-only
// data and the function tables, rw-p: data), the rest as anonymous.
func smapsByMapping(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return ""
	}
	sums := map[string]int64{}
	var order []string
	name := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":"):
			name = "anonymous " + fs[1]
			if len(fs) >= 6 {
				name = filepath.Base(fs[5]) + " " + fs[1]
			}
		case len(fs) >= 2 && fs[0] == "Rss:":
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			if _, ok := sums[name]; !ok {
				order = append(order, name)
			}
			sums[name] += kb
		}
	}
	var parts []string
	for _, n := range order {
		if sums[n] >= 100 {
			parts = append(parts, fmt.Sprintf("%s %.1f MB", n, float64(sums[n])/1e3))
		}
	}
	return strings.Join(parts, ", ")
}

// rssAnonOf reads VmRSS and RssAnon of a process (bytes; 0 when gone).
func rssAnonOf(pid int) (rss, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, f := range []struct {
			name string
			to   *int64
		}{{"VmRSS:", &rss}, {"RssAnon:", &anon}} {
			if rest, ok := strings.CutPrefix(line, f.name); ok {
				if fs := strings.Fields(rest); len(fs) > 0 {
					kb, _ := strconv.ParseInt(fs[0], 10, 64)
					*f.to = kb * 1024
				}
			}
		}
	}
	return rss, anon
}

// median of xs (the zero value when none).
func median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// getBody sends GET target with Host host and returns the body.
func getBody(ctx context.Context, target, host string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}
