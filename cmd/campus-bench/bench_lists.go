package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/store"
)

// runBenchLists is `campus-bench lists` (issue 27, lists): the admin list
// of a big school with page sizes, filters and the print view, each page
// measured from the school's own `campus app` process; with --before, the
// same pages of the same students from another campus binary's app beside
// it, rounds alternating between the two.
func runBenchLists(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench lists", "", `Fill a school with --students students in --classes classes (statuses and enrolment
years varied), run its app as a `+"`campus app`"+` process and measure the admin list: page sizes
50/100 and "all" (a class of at most 1,000), a deep page, the sidebar filters alone and combined
with a search, and the print view of one class; p50/p99 per page. With --before BIN, a second
school with the same students is served by BIN's app (a campus binary of the tree before: its
schema version is set back to 2 so that it serves it) and every page is measured there too, the
two alternating round by round. An older binary ignores parameters it does not know (it serves
its 50-row first page for them) and has no print view (404).`)
	var (
		mo          mongoOptions
		students    = fs.Int("students", 100_000, "students in the school")
		classes     = fs.Int("classes", 100, "classes (a class of students/classes; keep it ≤ 1,000 for \"all\")")
		duration    = fs.Duration("duration", 3*time.Second, "length of each measurement")
		concurrency = fs.Int("concurrency", 4, "concurrent closed-loop clients")
		rounds      = fs.Int("rounds", 2, "rounds (each measures every page once per binary)")
		before      = fs.String("before", "", "another campus binary (the tree before), measured beside")
		beforeSch   = fs.Int("before-schema", 2, "the schema version the --before binary serves (its school's version is set to it; 0: left as this tree migrated it)")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *students < 1 || *students > store.MaxImportRows || *classes < 1 || *classes > *students {
		return usageErr("--students must be 1-%d and --classes 1-students", store.MaxImportRows)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "campus-bench-lists-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	uri, backend := "", "MongoDB (MONGODB_URI)"
	if mo.uri != "" || mo.uriFile != "" {
		if uri, err = mo.resolve(); err != nil {
			return err
		}
	} else {
		srv, err := devmongo.Start(ctx, devmongo.Config{Dir: filepath.Join(dir, "mongo"), Listen: "127.0.0.1:0", Logger: logger, Sync: devmongo.SyncNormal})
		if err != nil {
			return fmt.Errorf("start embedded database: %w", err)
		}
		defer srv.Close()
		uri, backend = srv.URI(), "embedded FerretDB v1.24.2 (SQLite, synchronous=NORMAL)"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	self, err := campusBinary()
	if err != nil {
		return err
	}
	rows := listRows(*students, *classes)
	type side struct {
		name   string
		bin    string
		school *benchTenant
		client *http.Client
		child  *appChild
		fill   time.Duration
	}
	sides := []*side{{name: "after", bin: self}}
	if *before != "" {
		sides = append(sides, &side{name: "before", bin: *before})
	}
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)
	for _, sd := range sides {
		sd.school, err = benchSchool(ctx, uri, "lists"+sd.name+suffix, logger)
		if err != nil {
			return err
		}
		defer sd.school.close()
		sd.school.stopApp() // its own process serves it
		start := time.Now()
		if _, rowErrs, err := sd.school.st.ImportStudents(ctx, rows, nil); err != nil || len(rowErrs) > 0 {
			return fmt.Errorf("fill %s: %v %w", sd.name, rowErrs, err)
		}
		sd.fill = time.Since(start)
		if sd.name == "before" && *beforeSch > 0 {
			if err := schemaBack(ctx, uri, sd.school.st.DatabaseName(), *beforeSch); err != nil {
				return err
			}
		}
		if sd.child, err = startAppChildOf(ctx, sd.bin, sd.school.t, uri, e.stderr); err != nil {
			return fmt.Errorf("%s: %w", sd.name, err)
		}
		defer sd.child.stop()
		fmt.Fprintf(e.stdout, "%s: %s, %d students filled in %s\n", sd.name, sd.bin, *students, sd.fill.Round(time.Millisecond))
	}
	class := "C" + fmt.Sprintf("%03d", 7%*classes)
	paths := []string{
		"/admin/students/",
		"/admin/students/?per_page=100",
		"/admin/students/?class=" + class + "&per_page=all",
		"/admin/students/?page=1000",
		"/admin/students/?class=" + class,
		"/admin/students/?status=left",
		"/admin/students/?year=2023&status=enrolled",
		"/admin/students/?q=amina&class=" + class + "&per_page=100",
		"/admin/students/print/?class=" + class,
	}
	type key struct{ side, path string }
	results := map[key][]loadgen.Result{}
	for _, sd := range sides {
		client, err := sd.school.adminClient(ctx, *concurrency)
		if err != nil {
			return err
		}
		sd.client = client
		// Warm: the first requests load the read model (cold numbers are
		// coldstart's); wait for a 200.
		if err := waitOKWith(ctx, client, "http://"+sd.child.addr+"/admin/students/", sd.school.t.PrimaryHost, 5*time.Minute); err != nil {
			return fmt.Errorf("warm %s: %w", sd.name, err)
		}
	}
	fmt.Fprintf(e.stdout, "database: %s; %d clients, %s per measurement, %d rounds; load %s\n", backend, *concurrency, *duration, *rounds, loadavg())
	for r := 0; r < *rounds; r++ {
		for _, p := range paths {
			for i := range sides {
				sd := sides[(i+r)%len(sides)] // alternate who goes first
				res, err := loadgen.Run(ctx, loadgen.Config{Target: "http://" + sd.child.addr + p, Host: sd.school.t.PrimaryHost,
					Concurrency: *concurrency, Duration: *duration, Client: sd.client})
				if err != nil {
					return fmt.Errorf("bench %s %s: %w", sd.name, p, err)
				}
				results[key{sd.name, p}] = append(results[key{sd.name, p}], res)
			}
		}
	}
	var out []loadgen.Row
	for _, p := range paths {
		for _, sd := range sides {
			out = append(out, loadgen.Row{Name: sd.name + " " + p, Result: worstOf(results[key{sd.name, p}])})
		}
	}
	fmt.Fprintf(e.stdout, "worst p99 of the rounds (non-2xx: answers outside 200-299, e.g. the before tree's 404 for the print view); load after %s\n", loadavg())
	return loadgen.WriteTable(e.stdout, out)
}

// worstOf merges rounds: summed counts, the worst latencies.
func worstOf(rs []loadgen.Result) loadgen.Result {
	var w loadgen.Result
	for _, r := range rs {
		w.Requests += r.Requests
		w.Errors += r.Errors
		w.Non2xx += r.Non2xx
		w.Elapsed += r.Elapsed
		w.P50, w.P90, w.P99, w.Max = max(w.P50, r.P50), max(w.P90, r.P90), max(w.P99, r.P99), max(w.Max, r.Max)
	}
	if w.Elapsed > 0 {
		w.RPS = float64(w.Requests) / w.Elapsed.Seconds()
	}
	return w
}

// listRows are n students in classes C000…, a tenth left and a tenth
// graduated, enrolled in 2021-2025.
func listRows(n, classes int) []store.StudentInput {
	rows := benchRows(n)
	for i := range rows {
		rows[i].Class = fmt.Sprintf("C%03d", i%classes)
		rows[i].EnrolledOn = fmt.Sprintf("%d-09-01", 2021+i%5)
		switch i % 10 {
		case 3:
			rows[i].Status, rows[i].StatusDate = store.StatusLeft, "2025-12-01"
		case 7:
			rows[i].Status, rows[i].StatusDate = store.StatusGraduated, "2025-07-01"
		}
	}
	return rows
}

// schemaBack records schema version v in database db, so that a binary
// of that version serves it (the fields it does not know are ignored).
func schemaBack(ctx context.Context, uri, db string, v int) error {
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	_, err = c.Database(db).Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: v}}}})
	if err != nil {
		return fmt.Errorf("set the schema version of %s back to %d: %w", db, v, err)
	}
	return nil
}

// waitOKWith polls url (Host host) with client until it answers 200.
func waitOKWith(ctx context.Context, client *http.Client, url, host string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no 200 within %s (last: %v)", url, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
