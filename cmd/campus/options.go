package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
	"github.com/campus-saas/campus/tenancy"
)

// logOptions choose the log level and format of a command.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.format, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text, json")
}

// logger builds the command's slog logger: JSON when stderr is not a
// terminal, text when it is.
func (o *logOptions) logger(e *env) (*slog.Logger, error) {
	return o.loggerTo(e, e.stderr)
}

// loggerTo is logger writing to w (the format still follows stderr).
func (o *logOptions) loggerTo(e *env, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", o.level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	format := o.format
	if format == "auto" {
		format = "json"
		if isTerminal(e.stderr) {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	default:
		return nil, usageErr("--log-format %q: want auto, text or json", o.format)
	}
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

// backend resolves "auto".
func (o *registryOptions) backend(e *env) (string, error) {
	switch o.kind {
	case "auto":
		if e.getenv("CONSUL_HTTP_ADDR") != "" {
			return "consul", nil
		}
		return "embedded", nil
	case "embedded", "consul":
		return o.kind, nil
	default:
		return "", usageErr("--registry %q: want embedded, consul or auto", o.kind)
	}
}

// open opens the selected registry.
func (o *registryOptions) open(ctx context.Context, e *env, logger *slog.Logger, reg prometheus.Registerer) (registry.Registry, error) {
	kind, err := o.backend(e)
	if err != nil {
		return nil, err
	}
	if kind == "consul" {
		return openConsul(ctx, o, logger, reg)
	}
	dir, err := filepath.Abs(o.data)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", o.data, err)
	}
	if o.mustExist {
		if err := checkDataFolder(dir); err != nil {
			return nil, err
		}
	}
	r, err := embedded.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open embedded registry in %s: %w", dir, err)
	}
	return r, nil
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
		return "", describe(err)
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
