package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
	addr := ""
	for _, st := range s.sup.Status() {
		if st.Tenant == c.t.Name && st.PID != 0 {
			rss, anon := rssAnonOf(st.PID)
			c.rssUse = append(c.rssUse, rss)
			c.anonUse = append(c.anonUse, anon)
			addr = st.Addr
		}
	}
	// Where the anonymous memory is, from the app's Go runtime (its own
	// /metrics, not through the proxy).
	if body, code, err := getBody(ctx, "http://"+addr+"/metrics", c.t.PrimaryHost); err == nil && code == http.StatusOK {
		var parts []string
		for _, m := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_next_gc_bytes", "go_memstats_heap_inuse_bytes",
			"go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"} {
			for line := range strings.SplitSeq(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, m+" "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					parts = append(parts, fmt.Sprintf("%s %.1f MB", strings.TrimSuffix(strings.TrimPrefix(m, "go_memstats_"), "_bytes"), f/1e6))
				}
			}
		}
		c.memstats = strings.Join(parts, ", ")
	}
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
