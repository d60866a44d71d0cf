package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
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

const defaultMongoURI = "mongodb://127.0.0.1:27017"

func (o *mongoOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.uri, "mongodb-uri", "", "MongoDB connection string (prefer the environment variable: flags show up in ps) (default "+defaultMongoURI+")")
	fs.StringVar(&o.uriFile, "mongodb-uri-file", "", "file holding the MongoDB connection string (e.g. a Docker secret); wins over --mongodb-uri")
}

// resolve returns the URI to connect to.
func (o *mongoOptions) resolve() (string, error) {
	if o.uriFile != "" {
		b, err := os.ReadFile(o.uriFile)
		if err != nil {
			return "", fmt.Errorf("read MongoDB URI file: %w", err)
		}
		uri := strings.TrimSpace(string(b))
		if uri == "" {
			return "", fmt.Errorf("MongoDB URI file %s is empty", o.uriFile)
		}
		return uri, nil
	}
	if o.uri != "" {
		return o.uri, nil
	}
	return defaultMongoURI, nil
}

// redactURI hides the password of a connection string for logs and
// messages.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparseable MongoDB URI)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
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
