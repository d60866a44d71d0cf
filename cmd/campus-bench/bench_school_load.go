package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
)

// What `campus bench school` asks for. A row that repeats one request
// measures a cache hit (the read model remembers its last searches); the
// varied rows draw each request from a fixed, seeded set larger than that
// cache, as many visitors would: those are what a new search costs.

// benchVariety is how many different requests a varied row cycles
// through: more than the read model remembers (store's matchCacheSize).
const benchVariety = 256

// schoolQuery is one varied row: its name and its paths.
type schoolQuery struct {
	name  string
	paths []string
}

// variedPages are n distinct page numbers in [1, last], seeded.
func variedPages(r *rand.Rand, last, n int) []int {
	n = min(n, last)
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p := 1 + r.IntN(last)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// variedSearches are the varied search rows of the public page, over the
// names and registration numbers of benchRows(students).
func variedSearches(students int) []schoolQuery {
	r := rand.New(rand.NewPCG(11, uint64(students)))
	q := func(path string, words ...string) string {
		return path + "q=" + url.QueryEscape(strings.Join(words, " "))
	}
	distinct := func(list []string) []string {
		seen := map[string]bool{}
		var out []string
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		return out
	}
	var oneWord, accents, twoWords, deep, regNos, none []string
	// One word: first names, second names, their prefixes (what people
	// type), second names with their number.
	var words []string
	for _, n := range append(append([]string{}, benchFirst...), benchSecond...) {
		for k := 3; k <= len([]rune(n)); k++ {
			words = append(words, string([]rune(n)[:k]))
		}
	}
	for len(words) < benchVariety {
		words = append(words, fmt.Sprintf("%s%d", benchSecond[r.IntN(len(benchSecond))], r.IntN(97)))
	}
	for _, w := range distinct(words)[:benchVariety] {
		oneWord = append(oneWord, q("/?", w))
	}
	// Accents and case, written with them, without them or upper-case:
	// the accented second names with a number, the accented first names
	// with a second name.
	variant := func(n string, i int) string {
		switch i % 3 {
		case 0:
			return n
		case 1:
			return store.Fold(n)
		}
		return strings.ToUpper(n)
	}
	for i := 0; len(accents) < benchVariety; i++ {
		if i%2 == 0 {
			n := []string{"Ñúñez", "Traoré"}[(i/2)%2]
			accents = append(accents, q("/?", fmt.Sprintf("%s%d", variant(n, i/4), (i/4)%97)))
		} else {
			n := []string{"Zoë", "Aïcha", "Émile"}[(i/2)%3]
			accents = append(accents, q("/?", variant(n, i), benchSecond[(i/2)%len(benchSecond)]))
		}
	}
	// Two words: every first name with every second name (about
	// students/272 matches each), and their deeper pages.
	for _, f := range benchFirst {
		for _, s := range benchSecond {
			twoWords = append(twoWords, q("/?", f, s))
			deep = append(deep, q("/?", f, s)+"&page="+strconv.Itoa(2+r.IntN(6)))
		}
	}
	r.Shuffle(len(twoWords), func(i, j int) { twoWords[i], twoWords[j] = twoWords[j], twoWords[i] })
	r.Shuffle(len(deep), func(i, j int) { deep[i], deep[j] = deep[j], deep[i] })
	for len(regNos) < benchVariety {
		regNos = append(regNos, q("/?", benchRegNo(r.IntN(students))))
	}
	// No match: a second name with a number no student has (its trigrams
	// exist, apart: the index finds candidates, the check refuses them).
	for i := 0; len(none) < benchVariety; i++ {
		none = append(none, q("/?", fmt.Sprintf("%s%d", strings.ToLower(store.Fold(benchSecond[i%len(benchSecond)])), 100+i)))
	}
	return []schoolQuery{
		{"varied: search one word (256 names, prefixes)", oneWord},
		{"varied: search accents (256)", accents},
		{"varied: search two words (272 pairs)", twoWords},
		{"varied: search two words, pages 2-7", deep},
		{"varied: search reg no (256)", regNos},
		{"varied: search no match (256)", none},
	}
}

// appChild is the big school's app as its own `campus app` process, as
// `campus dev` runs every school: its heap, its GC and its scheduler are
// not the database's, the proxy's or the load generator's.
type appChild struct {
	cmd  *exec.Cmd
	addr string
}

func startAppChild(ctx context.Context, t registry.Tenant, uri string, stderr io.Writer) (*appChild, error) {
	self, err := campusBinary()
	if err != nil {
		return nil, err
	}
	return startAppChildOf(ctx, self, t, uri, stderr)
}

// startAppChildOf is startAppChild running the campus binary self.
func startAppChildOf(ctx context.Context, self string, t registry.Tenant, uri string, stderr io.Writer) (*appChild, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	rec, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "app", "--tenant", t.Name, "--tenant-record", string(rec), "--listen", addr,
		"--migrate", "--log-level", "error")
	cmd.Env = supervisor.ChildEnv(nil, "MONGODB_URI="+uri)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the big school's app: %w", err)
	}
	c := &appChild{cmd: cmd, addr: addr}
	if err := waitOK(ctx, "http://"+addr+"/readyz", t.PrimaryHost, 2*time.Minute); err != nil {
		c.stop()
		return nil, fmt.Errorf("the big school's app: %w", err)
	}
	return c, nil
}

func (c *appChild) stop() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(os.Interrupt)
		_ = c.cmd.Wait()
	}
}

// cpu is the child's CPU time so far (Linux /proc; 0 elsewhere).
func (c *appChild) cpu() time.Duration {
	if c == nil || c.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses, which may hold spaces):
	// state is field 3, utime 14 and stime 15, in clock ticks (USER_HZ, 100).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * (time.Second / 100)
}
