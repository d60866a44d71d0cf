// Package backends opens the registry backend a command is configured
// for: the embedded one in a data folder, or Consul (its agent's address,
// token and TLS from the standard CONSUL_* environment variables). The
// campus commands and cmd/campus-bench share it.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/consul"
	"github.com/campus-saas/campus/registry/embedded"
)

// Config selects a backend.
type Config struct {
	// Backend is "embedded", "consul", or "auto" (consul when
	// CONSUL_HTTP_ADDR is set).
	Backend string
	// Data is the embedded registry's folder.
	Data string
	// MustExist refuses to create an embedded registry (a
	// *NoDataFolderError instead): commands that only use what is there.
	MustExist bool
	// ConsulPrefix and ConsulCheck configure the Consul backend.
	ConsulPrefix string
	ConsulCheck  time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// ErrBackend is a Backend that is none of the three.
var ErrBackend = errors.New("want embedded, consul or auto")

// Kind resolves "auto" with getenv.
func (c Config) Kind(getenv func(string) string) (string, error) {
	switch c.Backend {
	case "auto":
		if getenv("CONSUL_HTTP_ADDR") != "" {
			return "consul", nil
		}
		return "embedded", nil
	case "embedded", "consul":
		return c.Backend, nil
	}
	return "", fmt.Errorf("registry backend %q: %w", c.Backend, ErrBackend)
}

// NoDataFolderError is an embedded registry that is not there.
type NoDataFolderError struct{ Dir string }

func (e *NoDataFolderError) Error() string {
	return fmt.Sprintf("no Campus data folder at %s (no %s there; nothing was created)", e.Dir, embedded.FileName)
}

// Open opens the backend of kind ("embedded" or "consul", see Kind).
func (c Config) Open(kind string) (registry.Registry, error) {
	if kind == "consul" {
		r, err := consul.New(consul.Config{Prefix: c.ConsulPrefix, CheckInterval: c.ConsulCheck, Logger: c.Logger, Registerer: c.Registerer})
		if err != nil {
			return nil, fmt.Errorf("open Consul registry: %w", err)
		}
		return r, nil
	}
	dir, err := filepath.Abs(c.Data)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", c.Data, err)
	}
	if c.MustExist {
		if _, err := os.Stat(filepath.Join(dir, embedded.FileName)); err != nil {
			return nil, &NoDataFolderError{Dir: dir}
		}
	}
	r, err := embedded.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open embedded registry in %s: %w", dir, err)
	}
	return r, nil
}

// Open opens the backend c selects, resolving "auto" with getenv.
func Open(_ context.Context, c Config, getenv func(string) string) (registry.Registry, error) {
	kind, err := c.Kind(getenv)
	if err != nil {
		return nil, err
	}
	return c.Open(kind)
}
