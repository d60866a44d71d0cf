// Command campus-bench measures Campus: the proxy against direct access,
// routing at 10,000 tenants, a big school's pages, the fleet migration,
// backups, cold starts and density. Each bench prints a table; the
// numbers and their commands are in docs/BENCHMARKS.md. It runs the
// `campus` binary for the processes it measures (see --campus) and is not
// part of what is shipped: the test machinery it links (internal/engines,
// internal/systemtest, internal/loadgen) stays out of `campus`.
//
//	go run ./cmd/campus-bench [proxy|routing|school|migrate|backup|coldstart|stampede|density|abuse|control|diskfull|atomic|sheets|history|student-history] [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/cliflags"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/backends"
	"github.com/campus-saas/campus/tenancy"
)

// env is everything a bench may touch outside its arguments.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	err := runBench(ctx, e, args)
	switch {
	case err == nil, errors.Is(err, cliflags.ErrHelp):
		return 0
	case errors.Is(err, cliflags.ErrUsage):
		fmt.Fprintf(e.stderr, "campus-bench: %v\n", err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "campus-bench: %v\n", err)
		return 1
	}
}

// benchEnv names the environment variables of the bench flags that have
// one: where the database and the registry are, and the campus binary.
func benchEnv(name string) string {
	switch name {
	case "mongodb-uri":
		return "MONGODB_URI"
	case "mongodb-uri-file":
		return "MONGODB_URI_FILE"
	case "registry", "consul-prefix", "consul-check-interval":
		return "CAMPUS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	case "campus":
		return "CAMPUS_BIN"
	}
	return ""
}

// newFlags returns the FlagSet of bench name ("bench routing"); every
// bench has --campus.
func newFlags(name, argsSynopsis, description string) *flag.FlagSet {
	name = strings.TrimSpace(strings.TrimPrefix(name, "bench"))
	fs := cliflags.New("campus-bench", name, argsSynopsis, description, benchEnv)
	fs.StringVar(&campusFlag, "campus", "", "the campus binary the bench runs (default: campus beside this binary, else on $PATH, else built from this module with go build)")
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string, e *env) error {
	return cliflags.Parse(fs, args, benchEnv, e.getenv, e.stdout)
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", cliflags.ErrUsage, fmt.Sprintf(format, args...))
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// campusFlag is --campus.
var campusFlag string

var campusOnce = sync.OnceValues(findCampus)

// campusBinary is the campus binary the benches run (`campus app`,
// `campus proxy`, `campus tenant backup` …).
func campusBinary() (string, error) { return campusOnce() }

func findCampus() (string, error) {
	if campusFlag != "" {
		return filepath.Abs(campusFlag)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "campus")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("campus"); err == nil {
		return filepath.Abs(p)
	}
	// `go run ./cmd/campus-bench` in the module: build campus beside.
	dir, err := os.MkdirTemp("", "campus-bench-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "campus")
	build := exec.Command("go", "build", "-o", bin, "github.com/campus-saas/campus/cmd/campus")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("no campus binary (--campus, $CAMPUS_BIN, beside campus-bench or on $PATH), and go build failed: %v\n%s", err, out)
	}
	return bin, nil
}

// mongoOptions are --mongodb-uri and --mongodb-uri-file.
type mongoOptions struct{ uri, uriFile string }

func (o *mongoOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.uri, "mongodb-uri", "", "MongoDB to run on (default: an embedded FerretDB in a temporary folder)")
	fs.StringVar(&o.uriFile, "mongodb-uri-file", "", "file holding the MongoDB connection string; wins over --mongodb-uri")
}

// registryOptions select the registry of `bench routing`.
type registryOptions struct {
	kind         string
	data         string
	consulPrefix string
	consulCheck  time.Duration
}

func (o *registryOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.kind, "registry", "auto", "registry backend: embedded, consul, or auto (consul when CONSUL_HTTP_ADDR is set)")
	fs.StringVar(&o.consulPrefix, "consul-prefix", "campus/", "Consul KV prefix for tenants and hosts")
	fs.DurationVar(&o.consulCheck, "consul-check-interval", 5*time.Second, "interval of the /readyz health check Consul runs on registered app instances")
}

func (o *registryOptions) config(logger *slog.Logger, reg prometheus.Registerer) backends.Config {
	return backends.Config{Backend: o.kind, Data: o.data, ConsulPrefix: o.consulPrefix, ConsulCheck: o.consulCheck, Logger: logger, Registerer: reg}
}

// backend resolves "auto".
func (o *registryOptions) backend(e *env) (string, error) {
	kind, err := o.config(nil, nil).Kind(e.getenv)
	if err != nil {
		return "", usageErr("--registry %q: want embedded, consul or auto", o.kind)
	}
	return kind, nil
}

// open opens the registry (kind, without "auto", when e is nil).
func (o *registryOptions) open(_ context.Context, e *env, logger *slog.Logger, reg prometheus.Registerer) (registry.Registry, error) {
	kind := o.kind
	if e != nil {
		var err error
		if kind, err = o.backend(e); err != nil {
			return nil, err
		}
	}
	return o.config(logger, reg).Open(kind)
}

// resolve is the database the operator named, if any.
func (o *mongoOptions) resolve() (string, error) {
	uri, _, err := tenancy.DatabaseAddress{URI: o.uri, URIFile: o.uriFile}.Resolve()
	return uri, err
}
