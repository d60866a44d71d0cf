package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/proxy"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// runBenchSchool is `campus bench school`: one big school and a few small
// ones behind one proxy, measured through the proxy.
func runBenchSchool(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench school", "", `Measure a big school through the proxy: fill one tenant with --students students by a
CSV import (timed, as `+"`campus manage T import`"+` or the admin's import page would), then load
the public page, a deep page, searches (one word, several words, a registration number) and
the admin list sorted by each column both ways, and print p50/p99 per request. Rows named
"repeated" send one request again and again (a search is then answered from the read model's
cache of recent searches); rows named "varied" send, in turn, each of a seeded set of 256
searches or pages (more than that cache holds): what new visitors cost. While the big
school is loaded, a small school beside it is measured too (its latency idle and under the
neighbour's load). Everything runs on loopback: the embedded database (or MONGODB_URI), the
proxy, the small school's app and the load generator in this process, the big school's app in
its own `+"`campus app`"+` process as `+"`campus dev`"+` runs it (--app-process=false: in this one too).`)
	var (
		mo          mongoOptions
		students    = fs.Int("students", 100_000, "students in the big school (one import of at most 100,000 rows)")
		duration    = fs.Duration("duration", 3*time.Second, "length of each measurement")
		concurrency = fs.Int("concurrency", 8, "concurrent closed-loop clients on the big school")
		syncFull    = fs.Bool("sqlite-sync-full", false, "embedded database: fsync at every commit (SQLite synchronous=FULL) instead of NORMAL")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of this process (database, proxy, clients; the app too with --app-process=false) to this file")
		language    = fs.String("language", "", "the big school's language setting (en, fr; empty: none, the default)")
		timeZone    = fs.String("time-zone", "", "the big school's time zone setting (an IANA name; empty: none, UTC)")
		appProcess  = fs.Bool("app-process", true, "run the big school's app as its own `campus app` process, as `campus dev` does (false: in this process, beside the database, the proxy and the clients)")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *students < 1 || *students > store.MaxImportRows {
		return usageErr("--students must be 1-%d", store.MaxImportRows)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("create the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "campus-bench-school-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	uri := ""
	backend := "MongoDB (MONGODB_URI)"
	if mo.uri != "" || mo.uriFile != "" {
		if uri, err = mo.resolve(); err != nil {
			return err
		}
	} else {
		sync, syncName := devmongo.SyncNormal, "synchronous=NORMAL"
		if *syncFull {
			sync, syncName = devmongo.SyncFull, "synchronous=FULL"
		}
		srv, err := devmongo.Start(ctx, devmongo.Config{Dir: filepath.Join(dir, "mongo"), Listen: "127.0.0.1:0", Logger: logger, Sync: sync})
		if err != nil {
			return fmt.Errorf("start embedded database: %w", err)
		}
		defer srv.Close()
		uri = srv.URI()
		backend = "embedded FerretDB v1.24.2 (SQLite, " + syncName + ")"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)
	big, err := benchSchool(ctx, uri, "big"+suffix, logger)
	if err != nil {
		return err
	}
	defer big.close()
	if *language != "" || *timeZone != "" {
		if err := big.st.SetLocale(ctx, *language, false, *timeZone); err != nil {
			return fmt.Errorf("the big school's language and zone: %w", err)
		}
	}
	var child *appChild // the big school's app, when in its own process
	if *appProcess {
		big.stopApp() // the child serves it instead
		if child, err = startAppChild(ctx, big.t, uri, e.stderr); err != nil {
			return err
		}
		defer child.stop()
		big.addr = child.addr
	}
	small, err := benchSchool(ctx, uri, "small"+suffix, logger)
	if err != nil {
		return err
	}
	defer small.close()
	if _, _, err := small.st.ImportStudents(ctx, benchRows(50), nil); err != nil {
		return fmt.Errorf("fill the small school: %w", err)
	}

	p, err := proxy.New(proxy.Config{Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	p.Update(registry.Snapshot{Version: 1, Tenants: []registry.Tenant{big.t, small.t}, Instances: []registry.Instance{
		{ID: "big-1", Tenant: big.t.Name, Addr: big.addr, Healthy: true},
		{ID: "small-1", Tenant: small.t.Name, Addr: small.addr, Healthy: true},
	}})
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go httpserve.Serve(ctx, httpserve.New(p, logger), proxyLn)
	proxyURL := "http://" + proxyLn.Addr().String()

	fmt.Fprintf(e.stdout, "campus bench school: %d students, %s, %s per measurement, %d concurrent clients, GOMAXPROCS=%d\n",
		*students, backend, *duration, *concurrency, runtimeProcs())
	if child != nil {
		fmt.Fprintf(e.stdout, "the big school's app in its own process (`campus app`, as campus dev runs it); database, proxy, small school and clients in this one; CPU below is this process + the app's\n\n")
	} else {
		fmt.Fprintf(e.stdout, "everything in this process (--app-process=false): one heap, one GC, one scheduler\n\n")
	}

	// The import, as another process would do it (its own Store): the
	// app's read model then loads the school again, timed separately.
	var csv strings.Builder
	csv.WriteString("registration_no,first_name,second_name\n")
	for _, r := range benchRows(*students) {
		fmt.Fprintf(&csv, "%s,%s,%s\n", r.RegistrationNo, r.FirstName, r.SecondName)
	}
	importer, err := tenancy.OpenStore(ctx, uri, big.t.Database)
	if err != nil {
		return err
	}
	// The app has served the (empty) school before: its read model is
	// loaded, as on a school that is in use when someone imports.
	if err := waitOK(ctx, proxyURL+"/", big.t.PrimaryHost, time.Minute); err != nil {
		return err
	}
	// Timed in steps, wall and CPU (this whole process: the embedded
	// database included), since a busy machine stretches wall time. The
	// browser's preview and confirmation each parse and plan; the
	// confirmation also applies.
	start, cpu0 := time.Now(), benchCPU(child)
	rows, lines, rowErrs, err := store.ParseStudentsCSVLines(strings.NewReader(csv.String()))
	if err != nil || len(rowErrs) > 0 {
		return fmt.Errorf("parse the CSV: %v %v", err, rowErrs)
	}
	parsed, cpu1 := time.Now(), benchCPU(child)
	plan, err := importer.PlanImport(ctx, rows, lines, nil, store.ImportAdd)
	if err != nil || len(plan.Errors) > 0 || len(plan.New) != *students {
		return fmt.Errorf("plan the import: %d new, %v, %v", len(plan.New), plan.Errors, err)
	}
	planned, cpu2 := time.Now(), benchCPU(child)
	res, err := importer.ApplyImport(ctx, plan, store.CommandLine)
	applied, cpu3 := time.Now(), benchCPU(child)
	importer.Close(context.WithoutCancel(ctx))
	if err != nil || res.Added != *students {
		return fmt.Errorf("import: %d rows, %v", res.Added, err)
	}
	fmt.Fprintf(e.stdout, "import of %d CSV rows: %s wall, %s CPU (goal ≤ 30s)\n", res.Added,
		applied.Sub(start).Round(time.Millisecond), (cpu3 - cpu0).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "  parse %s wall / %s CPU, check %s / %s, insert and journal %s / %s\n",
		parsed.Sub(start).Round(time.Millisecond), (cpu1 - cpu0).Round(time.Millisecond),
		planned.Sub(parsed).Round(time.Millisecond), (cpu2 - cpu1).Round(time.Millisecond),
		applied.Sub(planned).Round(time.Millisecond), (cpu3 - cpu2).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "  browser import (preview parses and checks, confirmation again, then inserts): about %s wall\n",
		(2*planned.Sub(start) + applied.Sub(planned)).Round(time.Millisecond))
	// The app learns of the import from the journal and loads the school
	// again, answering from its previous snapshot meanwhile.
	start, cpu0 = time.Now(), benchCPU(child)
	lastReg := benchRegNo(*students - 1)
	// The results table is there only when the search finds the student.
	polls, non200, err := waitBody(ctx, proxyURL+"/?q="+url.QueryEscape(lastReg), big.t.PrimaryHost, `id="students"`, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "the import visible through the app (it loads the school again, serving the previous snapshot meanwhile): %s wall, %s CPU (%d polls, %d not 200)\n\n",
		time.Since(start).Round(time.Millisecond), (benchCPU(child) - cpu0).Round(time.Millisecond), polls, non200)
	// Beside it, what a full load costs (a new process, or a model that
	// missed the journal): a fresh Store counting the students.
	fresh, err := tenancy.OpenStore(ctx, uri, big.t.Database)
	if err != nil {
		return err
	}
	start, cpu0 = time.Now(), benchCPU(child)
	count, err := fresh.CountStudents(ctx)
	for tries := 0; err != nil && tries < 30 && ctx.Err() == nil; tries++ { // a request's deadline is shorter than the load
		count, err = fresh.CountStudents(ctx)
	}
	fmt.Fprintf(e.stdout, "full load of the school into a new read model, for comparison: %s wall, %s CPU (%d students, %v)\n\n",
		time.Since(start).Round(time.Millisecond), (benchCPU(child) - cpu0).Round(time.Millisecond), count, err)
	fresh.Close(context.WithoutCancel(ctx))
	// That comparison's 100,000 students are garbage of this process now
	// (another process's, in real use): collect them before measuring, so
	// that the first rows do not pay for the bench's own set-up.
	runtime.GC()

	lastPage := (*students + 49) / 50
	regNo := url.QueryEscape(benchRegNo(*students / 2))
	// A row is one path repeated (a search then hits the read model's
	// cache of recent searches) or, "varied", a seeded set of more paths
	// than that cache holds, each in turn: what new visitors cost.
	type scenario struct {
		name  string
		paths []string
	}
	one := func(name, path string) scenario { return scenario{name, []string{path}} }
	pages := func(prefix string) []string {
		var out []string
		for _, p := range variedPages(rand.New(rand.NewPCG(7, uint64(len(prefix)))), lastPage, benchVariety) {
			out = append(out, fmt.Sprintf("%spage=%d", prefix, p))
		}
		return out
	}
	public := []scenario{
		one("public /", "/"),
		one("public page 2", "/?page=2"),
		one(fmt.Sprintf("public page %d (middle)", lastPage/2), fmt.Sprintf("/?page=%d", lastPage/2)),
		one(fmt.Sprintf("public page %d (last)", lastPage), fmt.Sprintf("/?page=%d", lastPage)),
		{"varied: public pages (256 of 1-" + strconv.Itoa(lastPage) + ")", pages("/?")},
		one("repeated: search one word (amina)", "/?q=amina"),
		one("repeated: search one word, accents (zoe)", "/?q=zoe"),
		one("repeated: search two words (amina otieno)", "/?q=amina+otieno"),
		one("repeated: search two words, deep page", "/?q=amina+otieno&page=20"),
		one("repeated: search reg no", "/?q="+regNo),
		one("repeated: search no match", "/?q=nobody+here"),
	}
	for _, v := range variedSearches(*students) {
		public = append(public, scenario{v.name, v.paths})
	}
	var admin []scenario
	for _, col := range []string{"registration_no", "first_name", "second_name"} {
		for _, dir := range []string{"", "-"} {
			admin = append(admin, one("admin sort "+dir+col, "/admin/students/?sort="+dir+col))
			admin = append(admin, scenario{"admin sort " + dir + col + ", varied deep pages", pages("/admin/students/?sort=" + dir + col + "&")})
		}
	}
	admin = append(admin, one("repeated: admin search amina, sort -second_name", "/admin/students/?q=amina&sort=-second_name"))
	var adminSearch []string
	for _, p := range variedSearches(*students)[0].paths {
		adminSearch = append(adminSearch, "/admin/students/"+p[1:]+"&sort=-second_name")
	}
	admin = append(admin, scenario{"varied: admin search one word, sort -second_name", adminSearch})
	adminClient, err := big.adminClient(ctx, *concurrency)
	if err != nil {
		return err
	}

	// The small school idle, as the reference.
	idle, err := loadgen.Run(ctx, loadgen.Config{Target: proxyURL + "/", Host: small.t.PrimaryHost, Concurrency: 1, Duration: *duration})
	if err != nil {
		return err
	}
	var rowsOut []loadgen.Row
	var appCPU []time.Duration // per row: the big school's app's CPU per request, when in its own process
	var neighbour loadgen.Result
	for _, group := range []struct {
		sc     []scenario
		client *http.Client
	}{{public, nil}, {admin, adminClient}} {
		for _, sc := range group.sc {
			var wg sync.WaitGroup
			var nb loadgen.Result
			wg.Go(func() {
				nb, _ = loadgen.Run(ctx, loadgen.Config{Target: proxyURL + "/", Host: small.t.PrimaryHost, Concurrency: 1, Duration: *duration})
			})
			paths, err := fitPages(ctx, group.client, proxyURL, big.t.PrimaryHost, sc.paths)
			if err != nil {
				return fmt.Errorf("bench %s: %w", sc.name, err)
			}
			var targets []string
			for _, p := range paths {
				targets = append(targets, proxyURL+p)
			}
			cpu0 := child.cpu()
			res, err := loadgen.Run(ctx, loadgen.Config{Targets: targets, Host: big.t.PrimaryHost,
				Concurrency: *concurrency, Duration: *duration, Client: group.client})
			appCPU = append(appCPU, (child.cpu()-cpu0)/time.Duration(max(res.Requests, 1)))
			wg.Wait()
			if err != nil {
				return fmt.Errorf("bench %s: %w", sc.name, err)
			}
			rowsOut = append(rowsOut, loadgen.Row{Name: sc.name, Result: res})
			neighbour = merge(neighbour, nb)
		}
	}
	fmt.Fprintf(e.stdout, "big school through the proxy (goal: p50 ≤ 50ms, p99 ≤ 200ms; non-2xx must be 0)\n")
	if err := loadgen.WriteTable(e.stdout, rowsOut); err != nil {
		return err
	}
	if child != nil {
		// CPU per request is steadier than latency on a shared machine:
		// what each kind of request costs the app, whoever else is busy.
		fmt.Fprintf(e.stdout, "\nthe big school's app (its own process): CPU per request, from /proc (10 ms ticks, over each row)\n")
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "name\trequests\tapp CPU/request\n")
		for i, r := range rowsOut {
			fmt.Fprintf(tw, "%s\t%d\t%.2fms\n", r.Name, r.Result.Requests, float64(appCPU[i])/float64(time.Millisecond))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "\nsmall school beside it (GET /, 1 client)\n")
	if err := loadgen.WriteTable(e.stdout, []loadgen.Row{
		{Name: "small school, big one idle", Result: idle},
		{Name: "small school, big one loaded", Result: neighbour},
	}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "small school loaded/idle: p50 %.2f, p99 %.2f\n", ratio(neighbour.P50, idle.P50), ratio(neighbour.P99, idle.P99))
	return nil
}

// benchTenant is one school of the bench: its store and its app.
type benchTenant struct {
	t       registry.Tenant
	st      *store.Store
	addr    string
	stopApp func() // stops the in-process app only
	close   func()
}

func benchSchool(ctx context.Context, uri, name string, logger *slog.Logger) (*benchTenant, error) {
	t, err := registry.NewTenant(name, []string{name + ".school.localhost"}, "School "+name)
	if err != nil {
		return nil, err
	}
	st, err := tenancy.OpenStore(ctx, uri, t.Database)
	if err != nil {
		return nil, err
	}
	if _, _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	h, err := app.NewServer(app.Config{Tenant: t, Store: st, Logger: logger, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	go httpserve.Serve(sctx, httpserve.New(h, logger), ln)
	return &benchTenant{t: t, st: st, addr: ln.Addr().String(), stopApp: cancel, close: func() {
		cancel()
		st.Drop(context.WithoutCancel(ctx))
		st.Close(context.WithoutCancel(ctx))
	}}, nil
}

// adminClient is an HTTP client that sends a superuser's session cookie.
func (b *benchTenant) adminClient(ctx context.Context, concurrency int) (*http.Client, error) {
	u, err := b.st.CreateSuperuser(ctx, "bench", "", "bench-password-1")
	if err != nil {
		return nil, fmt.Errorf("create the bench superuser: %w", err)
	}
	token, _, err := b.st.CreateSession(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("create the bench session: %w", err)
	}
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, DisableCompression: true}
	return &http.Client{Transport: cookieTransport{rt: tr, cookie: "campus_session=" + token}, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

type cookieTransport struct {
	rt     http.RoundTripper
	cookie string
}

func (c cookieTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Cookie", c.cookie)
	return c.rt.RoundTrip(r)
}

// waitBody polls target (with Host host) until a 200 answer holds want,
// and counts the polls and the answers that were not 200.
func waitBody(ctx context.Context, target, host, want string, limit time.Duration) (polls, non200 int, err error) {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return polls, non200, err
		}
		req.Host = host
		polls++
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				non200++
			} else if strings.Contains(string(body), want) {
				return polls, non200, nil
			}
		}
		if time.Now().After(deadline) {
			return polls, non200, fmt.Errorf("%s (Host %s) did not show %q within %s", target, host, want, limit)
		}
		select {
		case <-ctx.Done():
			return polls, non200, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitOK polls url (with Host host) until it answers 200.
func waitOK(ctx context.Context, target, host string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (Host %s) did not answer 200 within %s", target, host, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var (
	benchFirst  = []string{"Amina", "Kofi", "Zoë", "Wanjiru", "Chidi", "Ama", "Émile", "Thandiwe", "Juan", "Nia", "Otieno", "Fatou", "Kwame", "Lerato", "Yaw", "Aïcha"}
	benchSecond = []string{"Otieno", "Mensah", "Ñúñez", "Kamau", "Okafor", "Owusu", "Diallo", "Nkosi", "Mwangi", "Boateng", "Achieng", "Traoré", "Banda", "Mutua", "Adeyemi", "Moyo", "Njoroge"}
)

func benchRegNo(i int) string { return fmt.Sprintf("U/2026/%06d", i) }

// benchRows are n students with names from short lists (so that one-word
// searches match many, two-word searches fewer) and unique reg nos, and
// every other field of the record filled as a school's register has it
// (benchRecord, bench_record.go).
func benchRows(n int) []store.StudentInput {
	rows := make([]store.StudentInput, n)
	for i := range rows {
		rows[i] = store.StudentInput{RegistrationNo: benchRegNo(i), FirstName: benchFirst[i%len(benchFirst)],
			SecondName: fmt.Sprintf("%s%d", benchSecond[(i/len(benchFirst))%len(benchSecond)], i%97)}
		benchRecord(&rows[i], i)
	}
	return rows
}

// benchCPU is this process's CPU time, plus the big school's app's when
// it runs in its own process.
func benchCPU(child *appChild) time.Duration { return processCPU() + child.cpu() }
