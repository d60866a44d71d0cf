// Package cache keeps the last good registry snapshot on disk so that a
// process started while its registry backend is unreachable (Consul down)
// can still route.
//
// Wrap a backend with New: every snapshot the backend returns through
// Snapshot or Watch is written to a JSON state file (write to a temporary
// file, fsync, rename: a reader sees the old file or the new one, never a
// torn one), in the background so Watch callers are not slowed. While the
// backend has never answered, Snapshot and Watch(ctx, 0) serve the file's
// snapshot instead, and Watch after it waits until the backend answers.
// Versions stay increasing across that switch: the file's snapshot is
// served as version 1 and the backend's versions are shifted above it.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/campus-saas/campus/registry"
)

// Format is the state file's format number.
const Format = 1

// State is the state file's content.
type State struct {
	Format   int               `json:"format"`
	SavedAt  time.Time         `json:"saved_at"`
	Snapshot registry.Snapshot `json:"snapshot"`
}

// Save writes s to path atomically: a temporary file in the same
// directory, fsynced, then renamed over path.
func Save(path string, s registry.Snapshot) error {
	b, err := json.Marshal(State{Format: Format, SavedAt: time.Now().UTC(), Snapshot: s})
	if err != nil {
		return fmt.Errorf("encode state file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save state file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save state file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Load reads a state file written by Save. Tenants that do not validate
// make the whole file invalid: a routing table is trusted whole or not at
// all.
func Load(path string) (State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("load state file: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("load state file %s: %w", path, err)
	}
	if st.Format != Format {
		return State{}, fmt.Errorf("load state file %s: format %d, want %d", path, st.Format, Format)
	}
	for _, t := range st.Snapshot.Tenants {
		if err := t.Validate(); err != nil {
			return State{}, fmt.Errorf("load state file %s: tenant %q: %w", path, t.Name, err)
		}
	}
	for _, in := range st.Snapshot.Instances {
		if in.ID == "" || in.Tenant == "" || in.Addr == "" {
			return State{}, fmt.Errorf("load state file %s: incomplete instance %+v", path, in)
		}
	}
	slices.SortFunc(st.Snapshot.Tenants, func(a, b registry.Tenant) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Snapshot.Instances, func(a, b registry.Instance) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return st, nil
}

// Config configures a Registry.
type Config struct {
	// Path of the state file. Required.
	Path string
	// RetryMin and RetryMax bound the backoff between attempts to reach the
	// backend while serving the file (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
}

// Registry wraps a backend; see the package documentation. Writes go
// straight to the backend.
type Registry struct {
	registry.Registry // the backend
	cfg               Config
	log               *slog.Logger

	mu     sync.Mutex
	live   bool   // the backend has answered at least once
	base   uint64 // added to backend versions: 1 once the file was served
	file   *registry.Snapshot
	loaded bool // the file was read (successfully or not)

	saveMu  sync.Mutex
	pending *registry.Snapshot // newest snapshot not yet written
	saved   uint64             // backend version last written
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
}

var _ registry.Registry = (*Registry)(nil)

// New wraps backend. Close closes the backend too.
func New(backend registry.Registry, cfg Config) (*Registry, error) {
	if cfg.Path == "" {
		return nil, errors.New("cache: a state file path is required")
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Registry{
		Registry: backend,
		cfg:      cfg,
		log:      cfg.Logger.With("state_file", cfg.Path),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go r.saver()
	return r, nil
}

// Serving reports whether snapshots come from the state file (the backend
// has not answered yet).
func (r *Registry) Serving() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.live && r.base > 0
}

// Snapshot returns the backend's snapshot; while the backend has never
// answered, the state file's instead.
func (r *Registry) Snapshot(ctx context.Context) (registry.Snapshot, error) {
	s, err := r.Registry.Snapshot(ctx)
	if err == nil {
		return r.fromBackend(s), nil
	}
	if ctx.Err() != nil {
		return registry.Snapshot{}, err
	}
	if f, ok := r.fromFile(err); ok {
		return f, nil
	}
	return registry.Snapshot{}, err
}

// Watch waits for a snapshot newer than after. While the state file is
// being served it waits for the backend's first answer.
func (r *Registry) Watch(ctx context.Context, after uint64) (registry.Snapshot, error) {
	r.mu.Lock()
	live, base := r.live, r.base
	r.mu.Unlock()
	if live {
		var bafter uint64
		if after > base {
			bafter = after - base
		}
		s, err := r.Registry.Watch(ctx, bafter)
		if err != nil {
			return registry.Snapshot{}, err
		}
		return r.fromBackend(s), nil
	}
	if after == 0 {
		return r.Snapshot(ctx)
	}
	// The caller holds the file's snapshot (or something older): wait for
	// the backend.
	delay := r.cfg.RetryMin
	for {
		s, err := r.Registry.Snapshot(ctx)
		if err == nil {
			out := r.fromBackend(s)
			if out.Version > after {
				return out, nil
			}
			return r.Watch(ctx, after)
		}
		if ctx.Err() != nil {
			return registry.Snapshot{}, ctx.Err()
		}
		r.log.Debug("registry backend still unreachable", "err", err)
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return registry.Snapshot{}, ctx.Err()
		}
		delay = min(2*delay, r.cfg.RetryMax)
	}
}

// fromBackend marks the backend live, queues s for saving and returns it
// with its version shifted above the file's.
func (r *Registry) fromBackend(s registry.Snapshot) registry.Snapshot {
	r.mu.Lock()
	if !r.live {
		r.live = true
		if r.base > 0 {
			r.log.Info("registry backend answered; no longer serving the state file")
		}
	}
	base := r.base
	r.mu.Unlock()
	r.queueSave(s)
	s.Version += base
	return s
}

// fromFile serves the state file when the backend has never answered.
func (r *Registry) fromFile(backendErr error) (registry.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live {
		return registry.Snapshot{}, false
	}
	if !r.loaded {
		r.loaded = true
		st, err := Load(r.cfg.Path)
		if err != nil {
			r.log.Error("registry backend unreachable and no usable state file", "backend_err", backendErr, "err", err)
			return registry.Snapshot{}, false
		}
		snap := st.Snapshot
		snap.Version = 1
		r.file = &snap
		r.base = 1
		r.log.Warn("registry backend unreachable; serving the last good snapshot from the state file",
			"saved_at", st.SavedAt, "tenants", len(snap.Tenants), "instances", len(snap.Instances), "backend_err", backendErr)
	}
	if r.file == nil {
		return registry.Snapshot{}, false
	}
	return *r.file, true
}

func (r *Registry) queueSave(s registry.Snapshot) {
	r.saveMu.Lock()
	if s.Version <= r.saved || (r.pending != nil && s.Version <= r.pending.Version) {
		r.saveMu.Unlock()
		return
	}
	r.pending = &s
	r.saveMu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// saver writes queued snapshots, the newest first, until Close.
func (r *Registry) saver() {
	defer close(r.done)
	for {
		select {
		case <-r.wake:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

func (r *Registry) flush() {
	r.saveMu.Lock()
	s := r.pending
	r.pending = nil
	r.saveMu.Unlock()
	if s == nil {
		return
	}
	if err := Save(r.cfg.Path, *s); err != nil {
		r.log.Error("saving the registry snapshot failed", "err", err)
		return
	}
	r.saveMu.Lock()
	r.saved = max(r.saved, s.Version)
	r.saveMu.Unlock()
}

// Close writes any pending snapshot, then closes the backend.
func (r *Registry) Close() error {
	var err error
	r.closeMu.Do(func() {
		close(r.stop)
		<-r.done
		err = r.Registry.Close()
	})
	return err
}
