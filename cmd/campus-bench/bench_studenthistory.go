package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/tenancy"
)

// runBenchStudentHistory is `campus-bench student-history` (issue 27,
// item 6): a school filled by one import through its own import page,
// then the admin page of one imported student's history, warm and first
// after a wake, through the proxy; with --before, the same beside it with
// another campus binary (the tree before a change), in alternating turns.
func runBenchStudentHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlags("student-history", "", `Fill one school with --students students by ONE import through its import page (preview and
confirmation, applied by its app: the binary's own import code), then time GET
/admin/students/ID/history/ of an imported student (the middle one) as a superuser: --samples
warm requests, and the first request after each of --wakes wakes from zero (no process). With
--before, a second system runs another campus binary; the two are measured in alternating turns.`)
	var (
		mo       mongoOptions
		students = fs.Int("students", 100_000, "students imported (one import)")
		samples  = fs.Int("samples", 200, "warm requests per turn")
		wakes    = fs.Int("wakes", 5, "wakes from zero (each followed by a turn of warm requests)")
		before   = fs.String("before", "", "another campus binary (the tree before a change), measured beside")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *students < 1 || *wakes < 1 || *samples < 1 {
		return usageErr("--students, --wakes and --samples must be at least 1")
	}
	type system struct {
		cs          *coldSystem
		cookie      string
		path        string
		imported    string
		warm, first durations
		bad         int
		says        string // what the page says of the student's origin
	}
	bins := []struct{ name, bin string }{{"this tree", ""}}
	if *before != "" {
		bins = append(bins, struct{ name, bin string }{"before", *before})
	}
	var systems []*system
	for _, b := range bins {
		s, err := startScaleSystem(ctx, scaleSystemConfig{tenants: 1, idleTimeout: registry.MinIdleTimeout, health: 200 * time.Millisecond,
			maxStarts: supervisor.DefaultMaxStarts, holdTimeout: time.Minute, migrate: -1, mo: mo, logger: benchScaleLogger(e), progress: e.stderr, bin: b.bin})
		if err != nil {
			return err
		}
		defer s.close()
		cs := &coldSystem{name: b.name, sys: s}
		c := &coldClass{t: s.tenants[0]}
		cs.classes = []*coldClass{c}
		fmt.Fprintf(e.stderr, "%s: importing %d students through the import page (load %s)...\n", b.name, *students, loadavg())
		outcome, err := cs.browserImport(ctx, c, *students)
		if err != nil {
			return err
		}
		c.size = *students
		st, err := tenancy.OpenStore(ctx, s.uri, c.t.Database)
		if err != nil {
			return err
		}
		cookies, _, err := cs.adminSessions(ctx, c, st, 1)
		st.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		// IDs start at 1: the middle student is one the import added.
		systems = append(systems, &system{cs: cs, cookie: cookies[0], imported: outcome,
			path: "/admin/students/" + strconv.Itoa(*students/2) + "/history/"})
	}
	get := func(sy *system) (time.Duration, bool) {
		start := time.Now()
		body, code, err := sy.cs.send(ctx, sy.cs.classes[0], http.MethodGet, sy.path, sy.cookie, "", nil)
		d := time.Since(start)
		switch {
		case bytes.Contains(body, []byte("Created by import")):
			sy.says = "created by import"
		case bytes.Contains(body, []byte("before history was kept")):
			sy.says = "no history (before history was kept)"
		}
		return d, err == nil && code == http.StatusOK
	}
	for w := range *wakes {
		for _, sy := range systems { // in turn: the machine's noise falls on both
			if err := sy.cs.sys.waitStates(ctx, []registry.Tenant{sy.cs.classes[0].t}, 2*time.Minute, supervisor.StateIdle); err != nil {
				return err
			}
			d, ok := get(sy)
			sy.first = append(sy.first, d)
			if !ok {
				sy.bad++
			}
			for range *samples {
				d, ok := get(sy)
				sy.warm = append(sy.warm, d)
				if !ok {
					sy.bad++
				}
			}
			fmt.Fprintf(e.stderr, "%s: wake %d of %d measured (load %s)\n", sy.cs.name, w+1, *wakes, loadavg())
		}
	}
	fmt.Fprintf(e.stdout, "campus-bench student-history: GET /admin/students/%d/history/ (an imported student) of a %d-student school filled by one import, through the proxy, as a superuser; load after: %s\n\n",
		*students/2, *students, loadavg())
	for _, sy := range systems {
		fmt.Fprintf(e.stdout, "%s: the import: %s; the page says: %s\n", sy.cs.name, sy.imported, sy.says)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "binary\tfirst after wake n\tp50\tmax\twarm n\tp50\tp99\tmax\tnot 200\t")
	for _, sy := range systems {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t\n", sy.cs.name, len(sy.first), msf(sy.first.pct(50)), msf(sy.first.max()),
			len(sy.warm), msf(sy.warm.pct(50)), msf(sy.warm.pct(99)), msf(sy.warm.max()), sy.bad)
	}
	return w.Flush()
}
