package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/cliflags"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/backends"
	"github.com/campus-saas/campus/tenancy"
)

// logOptions choose the log level and format of a command.
type logOptions struct{ cliflags.Log }

func (o *logOptions) register(fs *flag.FlagSet) { o.Register(fs) }

// logger builds the command's slog logger: JSON when stderr is not a
// terminal, text when it is.
func (o *logOptions) logger(e *env) (*slog.Logger, error) { return o.loggerTo(e, e.stderr) }

// loggerTo is logger writing to w (the format still follows stderr).
func (o *logOptions) loggerTo(e *env, w io.Writer) (*slog.Logger, error) {
	return o.Logger(w, isTerminal(e.stderr))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// registryOptions select and open the registry backend.
type registryOptions struct {
	kind         string
	data         string
	consulPrefix string
	consulCheck  time.Duration

	// mustExist, set by commands that only use what is there (manage,
	// tenant list…), refuses to create an embedded registry: such a
	// command in the wrong folder says so instead of making an empty one.
	mustExist bool
}

func (o *registryOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.kind, "registry", "auto", "registry backend: embedded, consul, or auto (consul when CONSUL_HTTP_ADDR is set)")
	fs.StringVar(&o.data, "data", "./.campus", "data directory of the embedded registry (and of `campus dev`'s database)")
	fs.StringVar(&o.consulPrefix, "consul-prefix", "campus/", "Consul KV prefix for tenants and hosts")
	fs.DurationVar(&o.consulCheck, "consul-check-interval", 5*time.Second, "interval of the /readyz health check Consul runs on registered app instances")
}

func (o *registryOptions) config(logger *slog.Logger, reg prometheus.Registerer) backends.Config {
	return backends.Config{Backend: o.kind, Data: o.data, MustExist: o.mustExist, ConsulPrefix: o.consulPrefix,
		ConsulCheck: o.consulCheck, Logger: logger, Registerer: reg}
}

// backend resolves "auto".
func (o *registryOptions) backend(e *env) (string, error) {
	kind, err := o.config(nil, nil).Kind(e.getenv)
	if err != nil {
		return "", usageErr("--registry %q: want embedded, consul or auto", o.kind)
	}
	return kind, nil
}

// embedded reports whether the command uses the embedded registry (beside
// `campus dev`), for the examples its messages give.
func (o *registryOptions) embedded(e *env) bool {
	kind, err := o.backend(e)
	return err == nil && kind == "embedded"
}

// identity names the selected registry: "embedded" (the one in the data
// folder), or "consul" with Consul's address and the KV prefix. `campus
// dev` records it beside its defaults (tenancy.DevState.Registry).
func (o *registryOptions) identity(e *env) string {
	kind, err := o.backend(e)
	switch {
	case err != nil:
		return ""
	case kind == "consul":
		addr := e.getenv("CONSUL_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8500" // the Consul client's default
		}
		return "consul " + addr + " " + o.consulPrefix
	}
	return kind // its data folder is where dev.json is
}

// openLogged makes the command's logger (lo) and opens the selected
// registry with it, as every command that only reads or changes the
// registry does; the caller closes it.
func (o *registryOptions) openLogged(ctx context.Context, e *env, lo *logOptions) (registry.Registry, *slog.Logger, error) {
	logger, err := lo.logger(e)
	if err != nil {
		return nil, nil, err
	}
	reg, err := o.open(ctx, e, logger, nil)
	if err != nil {
		return nil, nil, err
	}
	return reg, logger, nil
}

// open opens the selected registry.
func (o *registryOptions) open(ctx context.Context, e *env, logger *slog.Logger, reg prometheus.Registerer) (registry.Registry, error) {
	kind, err := o.backend(e)
	if err != nil {
		return nil, err
	}
	return o.config(logger, reg).Open(kind)
}

// mongoOptions locate the MongoDB server. The URI may carry a password, so
// it is best given through MONGODB_URI or a file, and it is never logged.
type mongoOptions struct {
	uri     string
	uriFile string
}

func (o *mongoOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.uri, "mongodb-uri", "", "MongoDB connection string (prefer the environment variable: flags show up in ps) (default: the embedded database `campus dev` recorded in --data, else "+tenancy.DefaultMongoURI+")")
	fs.StringVar(&o.uriFile, "mongodb-uri-file", "", "file holding the MongoDB connection string (e.g. a Docker secret); wins over --mongodb-uri")
}

// address is where the database is: --mongodb-uri(-file) or
// $MONGODB_URI, else the embedded database `campus dev` recorded in
// dataDir ("": not looked at), else the default.
func (o *mongoOptions) address(dataDir string) tenancy.DatabaseAddress {
	return tenancy.DatabaseAddress{URI: o.uri, URIFile: o.uriFile, DataDir: dataDir}
}

// reach resolves the database address (see address) and checks that
// something answers there, saying in plain words where the address came
// from when nothing does.
func (o *mongoOptions) reach(ctx context.Context, dataDir string) (string, error) {
	uri, from, err := o.address(dataDir).Resolve()
	if err != nil {
		return "", err
	}
	if err := tenancy.Probe(ctx, uri, from, dataDir); err != nil {
		return "", err
	}
	return uri, nil
}

// where names the registry a command used, for messages: the data
// folder, or Consul's address.
func (o *registryOptions) where(e *env) string {
	if kind, _ := o.backend(e); kind == "consul" {
		return "in Consul at " + e.getenv("CONSUL_HTTP_ADDR")
	}
	abs, err := filepath.Abs(o.data)
	if err != nil {
		abs = o.data
	}
	return "in the data folder " + abs
}
