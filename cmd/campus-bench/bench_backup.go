package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/store"
	"github.com/campus-saas/campus/tenancy"
)

// `campus bench migrate` and `campus bench backup` (issue 15): the fleet
// migration and one school's backup and restore, measured through the
// same code as `campus migrate --all` and `campus tenant backup/restore`,
// on the embedded database (or MONGODB_URI) and an embedded registry in a
// temporary directory.

// benchWorld is a temporary registry and database server.
type benchWorld struct {
	dir, uri string
	reg      registry.Registry
	close    func()
}

func newBenchWorld(ctx context.Context, mo *mongoOptions) (*benchWorld, error) {
	dir, err := os.MkdirTemp("", "campus-bench-")
	if err != nil {
		return nil, err
	}
	w := &benchWorld{dir: dir}
	var closers []func()
	w.close = func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
		os.RemoveAll(dir)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	uri, _, stopDB, err := mo.benchDatabase(ctx, dir, logger)
	if err != nil {
		w.close()
		return nil, err
	}
	closers = append(closers, stopDB)
	w.uri = uri
	reg, err := embedded.Open(filepath.Join(dir, "registry"))
	if err != nil {
		w.close()
		return nil, err
	}
	closers = append(closers, func() { reg.Close() })
	w.reg = reg
	return w, nil
}

// manager is the tenant lifecycle over the world, as the campus commands
// use it.
func (w *benchWorld) manager() *tenancy.Manager {
	return &tenancy.Manager{Registry: w.reg, Database: tenancy.DatabaseAddress{URI: w.uri}}
}

func runBenchMigrate(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench migrate", "", `Measure `+"`campus migrate --all`"+` over many tenants, in this process: --tenants
tenants are created (registry record, stamped and migrated database), then the fleet is migrated
three times: with nothing to do, after every database was set back one schema version (so that
Migrate runs its last step again: a cheap migration, index creation on small collections and the
version write), and with nothing to do again.`)
	var mo mongoOptions
	mo.register(fs)
	tenants := fs.Int("tenants", 1000, "tenants in the fleet")
	parallel := fs.Int("parallel", 8, "--parallel of migrate --all")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	w, err := newBenchWorld(ctx, &mo)
	if err != nil {
		return err
	}
	defer w.close()
	client, err := tenancy.Connect(ctx, w.uri)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))

	// The fleet, created *parallel at a time, as `campus tenant create`
	// creates a tenant.
	lm := w.manager()
	start := time.Now()
	prefix := fmt.Sprintf("bm%d", time.Now().UnixNano()%1e6)
	names := make(chan int)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range *parallel {
		wg.Go(func() {
			for i := range names {
				name := fmt.Sprintf("%s-%04d", prefix, i)
				_, err := lm.Create(ctx, tenancy.NewTenant{Name: name, Hosts: []string{name + ".bench.localhost"}})
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for i := range *tenants {
		names <- i
	}
	close(names)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("create the fleet: %w", *p)
	}
	fmt.Fprintf(e.stdout, "campus bench migrate: %d tenants (created in %s), --parallel %d, GOMAXPROCS=%d, schema version %d, load average %s\n\n",
		*tenants, time.Since(start).Round(time.Second), *parallel, runtime.GOMAXPROCS(0), store.SchemaVersion, loadAverage())
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		for i := range *tenants {
			client.Database(fmt.Sprintf("%s-%04d", prefix, i)).Drop(dctx)
		}
	}()

	all, err := w.reg.Tenants(ctx)
	if err != nil {
		return err
	}
	m := &tenancy.FleetMigrator{Client: client, Registry: w.reg, Parallel: *parallel, Timeout: 10 * time.Minute}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttenants\tmigrated\tskipped\tfailed\ttotal\tCPU (this process)\tper tenant p50\tp99\tmax\t")
	row := func(label string) error {
		s, cpu := time.Now(), processCPU()
		res := m.Run(ctx, all)
		took, cpu := time.Since(s), processCPU()-cpu
		n := map[tenancy.MigrateStatus]int{}
		var d []time.Duration
		for _, r := range res {
			n[r.Status]++
			d = append(d, r.Took)
			if r.Err != nil && n[tenancy.MigrateFailed] == 1 {
				fmt.Fprintf(e.stderr, "first failure: %s: %v\n", r.Tenant, r.Err)
			}
		}
		slices.Sort(d)
		pct := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", label, len(res), n[tenancy.MigrateMigrated], n[tenancy.MigrateSkipped], n[tenancy.MigrateFailed],
			took.Round(time.Millisecond), cpu.Round(10*time.Millisecond), pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
		return nil
	}
	row("nothing to do")
	// One schema version back everywhere: the next run migrates each.
	for _, t := range all {
		_, err := client.Database(t.Database).Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: store.SchemaVersion - 1}}}}, options.UpdateOne())
		if err != nil {
			return err
		}
	}
	row("one cheap migration")
	row("nothing to do again")
	return tw.Flush()
}

func runBenchBackup(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench backup", "", `Measure `+"`campus tenant backup`"+` and `+"`campus tenant restore FILE`"+` of one school with
--students students and one admin, run in this process through the code the operator commands run (package tenancy): backup, purge,
restore (verify the archive, write the documents, build the indexes, activate). Also reports the
archive size and the peak Go heap in use during each step (this process, the embedded database
included when it runs here).`)
	var mo mongoOptions
	mo.register(fs)
	students := fs.Int("students", 100000, "students in the school")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	w, err := newBenchWorld(ctx, &mo)
	if err != nil {
		return err
	}
	defer w.close()
	client, err := tenancy.Connect(ctx, w.uri)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))

	start := time.Now()
	name := fmt.Sprintf("bb%d", time.Now().UnixNano()%1e6)
	t, err := registry.NewTenant(name, []string{name + ".bench.localhost"}, "Bench School")
	if err != nil {
		return err
	}
	if t, err = w.reg.CreateTenant(ctx, t); err != nil {
		return err
	}
	st := store.New(client.Database(t.Database), store.Options{BcryptCost: bcrypt.MinCost})
	defer client.Database(t.Database).Drop(context.WithoutCancel(ctx))
	if _, _, err := st.MigrateTenant(ctx, t.ID); err != nil {
		return err
	}
	// Seeded straight into the collections as the store lays them out
	// (ImportStudents checks every registration number against the
	// collection, which FerretDB does by scanning: quadratic at this size).
	students0 := client.Database(t.Database).Collection("students")
	now := time.Now().UTC().Truncate(time.Millisecond)
	const chunk = 5000
	for base := 0; base < *students; base += chunk {
		var docs []any
		for i := base; i < min(base+chunk, *students); i++ {
			docs = append(docs, store.Student{ID: int64(i + 1), RegistrationNo: fmt.Sprintf("BB/%06d", i),
				FirstName: "First" + fmt.Sprint(i%97), SecondName: "Second", CreatedAt: now, UpdatedAt: now})
		}
		if _, err := students0.InsertMany(ctx, docs); err != nil {
			return fmt.Errorf("seed students: %w", err)
		}
	}
	if _, err := client.Database(t.Database).Collection("counters").InsertOne(ctx,
		bson.D{{Key: "_id", Value: "students"}, {Key: "seq", Value: int64(*students)}}); err != nil {
		return fmt.Errorf("seed the student counter: %w", err)
	}
	// Seeded in the layout of schema 1; the migration gives them their
	// folded keys (store/migrate_v2.go), as it does an upgraded school's.
	if _, _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate the seeded students: %w", err)
	}
	if _, err := st.CreateSuperuser(ctx, "head", "", "bench-password-1"); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "campus bench backup: one school of %d students (seeded in %s), GOMAXPROCS=%d, load average %s\n",
		*students, time.Since(start).Round(time.Second), runtime.GOMAXPROCS(0), loadAverage())
	fmt.Fprintf(e.stdout, "CPU is this process's, the embedded database included when it runs here; on a busy machine time >> CPU.\n\n")

	archive := filepath.Join(w.dir, name+".campus.gz")
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\ttime\tCPU (this process)\tpeak Go heap in use\tnote\t")
	m := w.manager()
	step := func(label string, note func() string, run func() error) error {
		peak := watchHeap()
		s, cpu := time.Now(), processCPU()
		err := run()
		took, cpu := time.Since(s), processCPU()-cpu
		p := peak()
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d MiB\t%s\t\n", label, took.Round(10*time.Millisecond), cpu.Round(10*time.Millisecond), p>>20, note())
		return nil
	}
	if err := step("tenant backup", func() string {
		fi, _ := os.Stat(archive)
		return fmt.Sprintf("archive %.2f MiB", float64(fi.Size())/(1<<20))
	}, func() error {
		_, err := m.BackupToFile(ctx, t, archive, tenancy.BackupOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := step("tenant delete --purge-data", func() string { return "" }, func() error {
		_, err := m.Delete(ctx, t, time.Hour, true)
		return err
	}); err != nil {
		return err
	}
	if err := step("tenant restore FILE", func() string {
		// A store opened afresh, as the restored school's app opens it.
		// (Loading 100,000 students into its read model on FerretDB takes
		// longer than a request's deadline: give it time.)
		back := store.New(client.Database(t.Database), store.Options{BcryptCost: bcrypt.MinCost, QueryTimeout: 10 * time.Minute})
		n, err := back.CountStudents(ctx)
		if err != nil {
			return fmt.Sprintf("counting the students back: %v", err)
		}
		_, aerr := back.Authenticate(ctx, "head", "bench-password-1", "192.0.2.1")
		return fmt.Sprintf("%d students back, admin login ok: %v", n, aerr == nil)
	}, func() error {
		_, err := m.RestoreArchive(ctx, archive, tenancy.RestoreOptions{})
		return err
	}); err != nil {
		return err
	}
	return tw.Flush()
}

// watchHeap samples the Go heap in use until the returned function is
// called, which returns the peak.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// loadAverage is the machine's 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
