package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/campus-saas/campus/deploy/supervisor"
	"github.com/campus-saas/campus/internal/devmongo"
	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/store"
)

// seedTenants are created on the first run of `campus dev`.
var seedTenants = []struct{ name, host, display string }{
	{"default", "school.localhost", "Campus School"},
	{"nairobi", "nairobi.school.localhost", "Nairobi School"},
	{"accra", "accra.school.localhost", "Accra School"},
}

func runDev(ctx context.Context, e *env, args []string) error {
	fs := newFlags("dev", "", `Run the whole system on one machine: the embedded MongoDB-compatible server
(FerretDB on SQLite under --data) unless MONGODB_URI is set, the registry, a
supervisor that runs one 'campus app' process per active tenant, and the
proxy. The first run creates the tenants default, nairobi and accra.`)
	var (
		lo          logOptions
		ro          registryOptions
		mo          mongoOptions
		po          proxyOptions
		mongoListen = fs.String("mongo-listen", "127.0.0.1:27017", "address of the embedded MongoDB-compatible server")
		noSeed      = fs.Bool("no-seed", false, "do not create the default tenants on first run")
	)
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	po.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if backend, err := ro.backend(e); err != nil {
		return err
	} else if err := po.checkRegistration(backend); err != nil {
		return err
	}
	logger, err := lo.logger(e)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(ro.data)
	if err != nil {
		return fmt.Errorf("data directory %q: %w", ro.data, err)
	}
	ro.data = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// The database: a real MongoDB when one is configured, else the
	// embedded server.
	uri := ""
	if mo.uri != "" || mo.uriFile != "" {
		if uri, err = mo.resolve(); err != nil {
			return err
		}
		logger.Info("using MongoDB", "uri", redactURI(uri))
	} else {
		srv, err := devmongo.Start(ctx, devmongo.Config{
			Dir:    filepath.Join(dataDir, "mongo"),
			Listen: *mongoListen,
			Logger: logger.With("component", "devmongo"),
		})
		if err != nil {
			return fmt.Errorf("start embedded MongoDB-compatible server on %s: %w (is another server using the port? see --mongo-listen)", *mongoListen, err)
		}
		defer srv.Close()
		uri = srv.URI()
		logger.Info("embedded MongoDB-compatible server ready", "uri", uri, "dir", filepath.Join(dataDir, "mongo"))
	}

	metrics := newMetricsRegistry()
	reg, err := ro.open(ctx, e, logger, metrics)
	if err != nil {
		return err
	}
	defer reg.Close()
	po.consulReg, _ = reg.(*consul.Registry)
	po.checkInterval = ro.consulCheck

	if !*noSeed {
		if err := seed(ctx, reg, dataDir, logger); err != nil {
			return err
		}
	}
	tenants, err := reg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if !t.State.Routed() { // creating or deleted: not ours to migrate
			continue
		}
		if t.ID == "" { // registered before tenant IDs: reading it assigns one
			withID, err := reg.Tenant(ctx, t.Name)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", t.Name, err)
			}
			t = withID
		}
		if err := migrateTenant(ctx, uri, t, logger); err != nil {
			if errors.Is(err, store.ErrWrongTenant) {
				// Its app refuses to start too; the other schools run.
				logger.Error("not serving tenant", "tenant", t.Name, "err", err)
				continue
			}
			return err
		}
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	sup, err := supervisor.New(supervisor.Config{
		Registry: reg,
		// A child gets its tenant's record, not a registry: it cannot
		// register instances or touch other tenants through Campus (the
		// supervisor alone registers it), and its environment is the
		// allowlist plus its database URI, nothing else of ours.
		Command: func(t registry.Tenant, listen string) *exec.Cmd {
			rec, err := json.Marshal(t)
			if err != nil {
				return nil // a Tenant always encodes
			}
			cmd := exec.Command(self, "app",
				"--tenant", t.Name,
				"--tenant-record", string(rec),
				"--listen", listen,
				"--migrate",
				"--log-level", lo.level,
				"--log-format", childLogFormat(lo.format, e),
			)
			cmd.Env = supervisor.ChildEnv(nil, "MONGODB_URI="+uri)
			return cmd
		},
		// Each supervisor clears stale instances of its own prefix at start,
		// so the prefix names this machine (supervisors may share Consul).
		InstanceIDPrefix: "dev-" + hostname() + "-",
		// Longer than an app's own graceful shutdown, so a busy app is
		// not killed while it drains.
		StopGrace:  httpserve.ShutdownTimeout + time.Second,
		Logger:     logger.With("component", "supervisor"),
		Registerer: metrics,
	})
	if err != nil {
		return err
	}
	printBanner(e, po, tenants)
	accessLog, flushAccessLog, err := openAccessLog(e, &lo)
	if err != nil {
		return err
	}
	defer flushAccessLog() // after serveProxy: the listeners have drained
	po.accessLog = accessLog
	err = serveProxy(ctx, logger, metrics, reg, po, sup, sup.Run)
	logger.Info("campus dev stopped")
	return err
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	if n, err := registry.NormalizeHost(h); err == nil {
		return strings.ReplaceAll(n, ".", "-")
	}
	return "local"
}

// childLogFormat keeps the children's logs in the parent's format.
func childLogFormat(format string, e *env) string {
	if format != "auto" {
		return format
	}
	if isTerminal(e.stderr) {
		return "text"
	}
	return "json"
}

// seed creates the default tenants once per data directory. A marker file
// remembers that it happened, so tenants an operator deleted stay deleted.
func seed(ctx context.Context, reg registry.Registry, dataDir string, logger *slog.Logger) error {
	marker := filepath.Join(dataDir, "seeded")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	for _, s := range seedTenants {
		t, err := registry.NewTenant(s.name, []string{s.host}, s.display)
		if err != nil {
			return fmt.Errorf("seed tenant %s: %w", s.name, err)
		}
		if _, err := reg.CreateTenant(ctx, t); err != nil && !errors.Is(err, registry.ErrExists) {
			return fmt.Errorf("seed tenant %s: %w", s.name, err)
		}
		logger.Info("created tenant", "tenant", s.name, "host", s.host)
	}
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

func migrateTenant(ctx context.Context, uri string, t registry.Tenant, logger *slog.Logger) error {
	if err := checkHasID(t); err != nil {
		return err
	}
	st, err := openStore(ctx, uri, t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	from, to, err := st.MigrateTenant(ctx, t.ID)
	if err != nil {
		return tenantDatabaseError(t, fmt.Errorf("migrate database %q: %w", t.Database, err))
	}
	if from != to {
		logger.Info("migrated tenant database", "tenant", t.Name, "database", t.Database, "from", from, "to", to)
	}
	return nil
}

func printBanner(e *env, po proxyOptions, tenants []registry.Tenant) {
	port := ""
	if _, p, err := net.SplitHostPort(po.listen); err == nil && p != "80" {
		port = ":" + p
	}
	fmt.Fprintf(e.stdout, "\nCampus is starting. Schools:\n")
	for _, t := range tenants {
		state := ""
		if t.State != registry.StateActive {
			state = " (" + string(t.State) + ")"
		}
		fmt.Fprintf(e.stdout, "  %-10s http://%s%s/%s\n", t.Name, t.PrimaryHost, port, state)
	}
	fmt.Fprintf(e.stdout, "\nAdmin sites are at /admin/. Create a superuser from another terminal:\n")
	fmt.Fprintf(e.stdout, "  campus manage nairobi createsuperuser\n")
	fmt.Fprintf(e.stdout, "Proxy metrics and routes: http://%s/metrics  http://%s/routes\n", po.adminListen, po.adminListen)
	fmt.Fprintf(e.stdout, "\nThis is a development mode for one trusted machine: each school has its own app process,\n"+
		"but the embedded database and registry have no per-school credentials and every process runs\n"+
		"as you. Production isolation (a database user and a Consul token per school, a container per\n"+
		"app) is in docs/PRODUCTION.md; what each layer guarantees is in docs/ARCHITECTURE.md.\n")
	fmt.Fprintf(e.stdout, "Press Ctrl-C to stop.\n\n")
}

// lockDataDir makes sure only one `campus dev` uses a data directory: two
// supervisors would fight over the same tenants.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another `campus dev` (pid %s) is using %s; stop it or choose another --data", strings.TrimSpace(string(pid)), dir)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return func() { f.Close() }, nil
}
