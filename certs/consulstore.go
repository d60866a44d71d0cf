package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/consul/api"
)

// DefaultConsulPrefix is where ConsulStorage keeps certificates and ACME
// state in Consul KV; locks live beside it under "<prefix>-locks/".
const DefaultConsulPrefix = "campus/certs"

// ConsulStorage is a certmagic.Storage on Consul KV. Locks are Consul
// sessions (api.Lock), so that several proxies sharing one Consul order
// each certificate once: certmagic takes the lock for a name before
// ordering and, holding it, first looks in storage for a certificate
// another proxy obtained meanwhile. A proxy that dies holding a lock loses
// it when its session's TTL runs out.
//
// The token needs key_prefix write on the prefix and on "<prefix>-locks/"
// and session write; nothing of campus/tenants or campus/hosts.
type ConsulStorage struct {
	client *api.Client
	prefix string // without trailing slash

	mu    sync.Mutex
	locks map[string]*api.Lock // held by this process, by lock name
}

// NewConsulStorage returns a storage under prefix (DefaultConsulPrefix
// when empty).
func NewConsulStorage(client *api.Client, prefix string) *ConsulStorage {
	if prefix == "" {
		prefix = DefaultConsulPrefix
	}
	return &ConsulStorage{client: client, prefix: strings.Trim(prefix, "/"), locks: map[string]*api.Lock{}}
}

var _ certmagic.Storage = (*ConsulStorage)(nil)

func (s *ConsulStorage) key(k string) string { return s.prefix + "/" + strings.Trim(k, "/") }

// Store writes value; the pair's Flags hold the modification time (Unix
// nanoseconds) for Stat.
func (s *ConsulStorage) Store(ctx context.Context, key string, value []byte) error {
	p := &api.KVPair{Key: s.key(key), Value: value, Flags: uint64(time.Now().UnixNano())}
	if _, err := s.client.KV().Put(p, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul storage: store %s: %w", key, err)
	}
	return nil
}

// Load reads a value, fs.ErrNotExist when absent.
func (s *ConsulStorage) Load(ctx context.Context, key string) ([]byte, error) {
	p, _, err := s.client.KV().Get(s.key(key), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul storage: load %s: %w", key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("consul storage: load %s: %w", key, fs.ErrNotExist)
	}
	return p.Value, nil
}

// Delete removes a key and everything under it as a directory.
func (s *ConsulStorage) Delete(ctx context.Context, key string) error {
	wo := (&api.WriteOptions{}).WithContext(ctx)
	if _, err := s.client.KV().Delete(s.key(key), wo); err != nil {
		return fmt.Errorf("consul storage: delete %s: %w", key, err)
	}
	if _, err := s.client.KV().DeleteTree(s.key(key)+"/", wo); err != nil {
		return fmt.Errorf("consul storage: delete %s/: %w", key, err)
	}
	return nil
}

// Exists reports whether key holds a value or is a directory.
func (s *ConsulStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys (full, as given to Store) directly under dir, or
// every key below it when recursive.
func (s *ConsulStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	sep := "/"
	if recursive {
		sep = ""
	}
	base := s.key(dir) + "/"
	keys, _, err := s.client.KV().Keys(base, sep, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul storage: list %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("consul storage: list %s: %w", dir, fs.ErrNotExist)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(k, s.prefix+"/"), "/"))
	}
	return out, nil
}

// Stat describes a key (a value: terminal) or a directory.
func (s *ConsulStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	qo := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	p, _, err := s.client.KV().Get(s.key(key), qo)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: stat %s: %w", key, err)
	}
	if p != nil {
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, int64(p.Flags)), Size: int64(len(p.Value)), IsTerminal: true}, nil
	}
	keys, _, err := s.client.KV().Keys(s.key(key)+"/", "/", qo)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: stat %s: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("consul storage: stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

func (s *ConsulStorage) lockKey(name string) string {
	return s.prefix + "-locks/" + path.Clean("/" + name)[1:]
}

// Lock blocks until this process holds the named lock across every proxy
// sharing the Consul, or ctx ends.
func (s *ConsulStorage) Lock(ctx context.Context, name string) error {
	l, err := s.client.LockOpts(&api.LockOptions{
		Key:         s.lockKey(name),
		SessionName: "campus-certs " + name,
		SessionTTL:  "30s",
	})
	if err != nil {
		return fmt.Errorf("consul storage: lock %s: %w", name, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-done:
		}
	}()
	lost, err := l.Lock(stop)
	close(done)
	if err != nil {
		return fmt.Errorf("consul storage: lock %s: %w", name, err)
	}
	if lost == nil {
		return fmt.Errorf("consul storage: lock %s: %w", name, ctx.Err())
	}
	s.mu.Lock()
	s.locks[name] = l
	s.mu.Unlock()
	return nil
}

// Unlock releases a lock this process holds.
func (s *ConsulStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("consul storage: unlock %s: not held", name)
	}
	if err := l.Unlock(); err != nil {
		return fmt.Errorf("consul storage: unlock %s: %w", name, err)
	}
	if err := l.Destroy(); err != nil && !errors.Is(err, api.ErrLockInUse) {
		return fmt.Errorf("consul storage: unlock %s: %w", name, err)
	}
	return nil
}
