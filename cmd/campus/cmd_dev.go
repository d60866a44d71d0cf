package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/campus-saas/campus/tenancy"
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
		pu          publicURLOptions
		so          scaleOptions
		bo          budgetOptions
		mongoListen = fs.String("mongo-listen", "127.0.0.1:27017", "address of the embedded MongoDB-compatible server")
		noSeed      = fs.Bool("no-seed", false, "do not create the default tenants on first run")
	)
	lo.register(fs)
	ro.register(fs)
	mo.register(fs)
	po.register(fs)
	po.tls.register(fs, true)
	pu.register(fs)
	so.register(fs)
	bo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := so.check(); err != nil {
		return err
	}
	if _, _, err := bo.resolve(); err != nil {
		return err
	}
	if backend, err := ro.backend(e); err != nil {
		return err
	} else if err := po.check(backend); err != nil {
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
	po.tls.dataDir, po.Notice = dataDir, e.stdout
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	public := po.servedPublicURL() // https on the TLS port with --tls
	if pu.raw != "" {
		if public, err = tenancy.ParsePublicURL(pu.raw); err != nil {
			return usageErr("--public-url: %v", err)
		}
	}
	state := tenancy.DevState{PublicURL: public.String(), IdleTimeout: so.idleTimeout.String(), Memory: bo.memory, Registry: ro.identity(e)}

	// The database: a real MongoDB when one is configured, else the
	// embedded server.
	uri := ""
	if mo.uri != "" || mo.uriFile != "" {
		if uri, _, err = mo.address("").Resolve(); err != nil {
			return err
		}
		logger.Info("using MongoDB", "uri", tenancy.RedactURI(uri))
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
		state.MongoURI = uri // no password: safe to record for other terminals
		logger.Info("embedded MongoDB-compatible server ready", "uri", uri, "dir", filepath.Join(dataDir, "mongo"))
	}
	if err := tenancy.WriteDevState(dataDir, state); err != nil {
		return err
	}

	metrics := newMetricsRegistry()
	reg, err := ro.open(ctx, e, logger, metrics)
	if err != nil {
		return err
	}
	defer reg.Close()
	po.Consul, _ = reg.(*consul.Registry)
	po.CheckInterval = ro.consulCheck

	// No Credentials: the supervisor registers dev's apps itself.
	m := &tenancy.Manager{Registry: reg, Database: tenancy.DatabaseAddress{URI: uri}, Logger: logger}
	if !*noSeed {
		if err := seed(ctx, m, dataDir, logger); err != nil {
			return err
		}
	}
	tenants, err := m.MigrateServed(ctx, uri)
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	child := supervisor.CampusApp{Bin: self, MongoURI: uri, LogLevel: lo.Level, LogFormat: childLogFormat(lo.Format, e)}
	supCfg := supervisor.Config{
		Registry: reg,
		// A child gets its tenant's record, not a registry: it cannot
		// register instances or touch other tenants through Campus (the
		// supervisor alone registers it), and its environment is the
		// allowlist plus its database URI, nothing else of ours.
		Command: child.Command,
		// Each supervisor clears stale instances of its own prefix at start,
		// so the prefix names this machine (supervisors may share Consul).
		InstanceIDPrefix: "dev-" + hostname() + "-",
		// Longer than an app's own graceful shutdown, so a busy app is
		// not killed while it drains.
		StopGrace:  httpserve.ShutdownTimeout + time.Second,
		Logger:     logger.With("component", "supervisor"),
		Registerer: metrics,
	}
	if state.MongoURI != "" { // the embedded database's files are in the data folder
		supCfg.DataDir, _ = filepath.Abs(dataDir)
	}
	so.apply(&supCfg, &po)
	if err := bo.apply(&supCfg); err != nil {
		return err
	}
	supCfg.Pool = child.Pool(so.pool)
	sup, err := supervisor.New(supCfg)
	if err != nil {
		return err
	}
	external := ""
	if state.MongoURI == "" {
		external = uri
	}
	printBanner(e, po, public, dataDir, external, tenants)
	accessLog, flushAccessLog, err := openAccessLog(e, &lo)
	if err != nil {
		return err
	}
	defer flushAccessLog() // after serveProxy: the listeners have drained
	po.AccessLog = accessLog
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

// seed creates the default tenants once per data directory, through the
// same create as `campus tenant create` (claimed, database stamped and
// migrated, then active). A marker file remembers that it happened, so
// tenants an operator deleted stay deleted. A school that cannot be
// created is logged; the others run.
func seed(ctx context.Context, m *tenancy.Manager, dataDir string, logger *slog.Logger) error {
	marker := filepath.Join(dataDir, "seeded")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	var ts []tenancy.NewTenant
	for _, s := range seedTenants {
		ts = append(ts, tenancy.NewTenant{Name: s.name, Hosts: []string{s.host}, DisplayName: s.display})
	}
	created, err := m.Seed(ctx, ts)
	for _, t := range created {
		logger.Info("created tenant", "tenant", t.Name, "host", t.PrimaryHost)
	}
	if err != nil {
		var unreachable *tenancy.UnreachableError
		if errors.As(err, &unreachable) {
			return describe(err)
		}
		logger.Error("not every default school was created", "err", describe(err))
	}
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

func printBanner(e *env, po proxyOptions, public publicURL, dataDir, externalMongo string, tenants []registry.Tenant) {
	fmt.Fprintf(e.stdout, "\nCampus is starting. Schools:\n")
	for _, t := range tenants {
		state := ""
		if t.State != registry.StateActive {
			state = " (" + string(t.State) + ")"
		}
		fmt.Fprintf(e.stdout, "  %-10s %s%s\n", t.Name, public.TenantURL(t.PrimaryHost, "/"), state)
	}
	fmt.Fprintf(e.stdout, "\nAdmin sites are at /admin/. To create a superuser, run in a second terminal:\n")
	lines := secondTerminal(dataDir, externalMongo)
	name, install := selfName()
	if len(lines) > 0 && strings.HasPrefix(lines[0], "cd ") {
		lines = append(lines[:1], append(install, lines[1:]...)...)
	} else {
		lines = append(install, lines...)
	}
	for _, line := range lines {
		fmt.Fprintf(e.stdout, "  %s\n", line)
	}
	fmt.Fprintf(e.stdout, "  %s manage nairobi createsuperuser\n", name)
	fmt.Fprintf(e.stdout, "Proxy metrics and routes: http://%s/metrics  http://%s/routes\n", po.AdminListen, po.AdminListen)
	fmt.Fprintf(e.stdout, "\nThis is a development mode for one trusted machine: each school has its own app process,\n"+
		"but the embedded database and registry have no per-school credentials and every process runs\n"+
		"as you. Production isolation (a database user and a Consul token per school, a container per\n"+
		"app) is in docs/PRODUCTION.md; what each layer guarantees is in docs/ARCHITECTURE.md.\n")
	fmt.Fprintf(e.stdout, "Press Ctrl-C to stop.\n\n")
}

// secondTerminal are the lines that put another terminal where this
// `campus dev` is: the folder, the data folder when it is not the default
// one there, and the database when it is not the embedded one (whose
// address dev.json records).
func secondTerminal(dataDir, externalMongo string) []string {
	cwd, err := os.Getwd()
	if err != nil {
		return []string{"export CAMPUS_DATA=" + shellQuote(dataDir)}
	}
	lines := []string{"cd " + shellQuote(cwd)}
	if dataDir != filepath.Join(cwd, ".campus") {
		lines = append(lines, "export CAMPUS_DATA="+shellQuote(dataDir))
	}
	if externalMongo != "" {
		// The URI may hold a password: the line names it, never prints it.
		lines = append(lines, "export MONGODB_URI='…'   # the MongoDB URI this terminal uses: "+tenancy.RedactURI(externalMongo))
	}
	return lines
}

// selfName is how another terminal runs this binary: "campus" when that
// is what $PATH finds; under `go run` (a temporary binary, gone
// afterwards) also "campus", after the lines that install it (the
// README's one way: go install); else the binary's absolute path.
func selfName() (name string, install []string) {
	self, err := os.Executable()
	if err != nil {
		return cliName, nil
	}
	if p, err := exec.LookPath(cliName); err == nil && evalPath(p) == evalPath(self) {
		return cliName, nil
	}
	if builtByGoRun(self) {
		pkg := "./cmd/campus"
		if st, err := os.Stat(filepath.Join("cmd", "campus")); err != nil || !st.IsDir() {
			pkg = "github.com/campus-saas/campus/cmd/campus" // from a folder of the module
		}
		return cliName, []string{
			"go install " + pkg + "   # once: puts campus in $(go env GOPATH)/bin",
			`export PATH="$(go env GOPATH)/bin:$PATH"   # if that folder is not on your PATH yet`,
		}
	}
	return shellQuote(self), nil
}

func evalPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
