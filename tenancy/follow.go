package tenancy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/campus-saas/campus/registry"
)

// TenantReader reads one tenant's record.
type TenantReader interface {
	Tenant(ctx context.Context, name string) (registry.Tenant, error)
}

// Follower keeps a running app's view of its tenant's hosts in step
// with the registry (`campus tenant host add|remove` while it runs), so a
// custom domain is answered without a restart. It reads only its own
// tenant's record, with the app's own registry credential. The record is
// trusted for hosts and display name only; a record with another ID (the
// name deleted, purged and re-created) stops the app instead: its
// database belongs to the old tenant.
type Follower struct {
	cur atomic.Pointer[registry.Tenant]
}

// NewFollower follows t.
func NewFollower(t registry.Tenant) *Follower {
	f := &Follower{}
	f.cur.Store(&t)
	return f
}

// Current is app.Config.Hosts.
func (f *Follower) Current() registry.Tenant { return *f.cur.Load() }

// ErrTenantReplaced ends an app whose tenant name now has another ID.
var ErrTenantReplaced = errors.New("the tenant was re-created with another ID")

// Run re-reads the record every interval until ctx ends. Registry errors
// keep the last hosts (an outage must not take a school offline) and are
// logged once per change of error.
func (f *Follower) Run(ctx context.Context, reg TenantReader, every time.Duration, log *slog.Logger) error {
	t := f.Current()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		u, err := reg.Tenant(ctx, t.Name)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, registry.ErrNotFound):
			err = errors.New("tenant record not found (purged?); keeping the hosts of start-up")
		case err == nil && u.ID != t.ID:
			return fmt.Errorf("tenant %q: record now has ID %s, this app serves %s: %w", t.Name, u.ID, t.ID, ErrTenantReplaced)
		}
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				log.Warn("re-read tenant record", "err", err)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		old := f.Current()
		if slices.Equal(u.Hosts, old.Hosts) && u.PrimaryHost == old.PrimaryHost && u.DisplayName == old.DisplayName {
			continue
		}
		next := old
		next.Hosts, next.PrimaryHost, next.DisplayName = slices.Clone(u.Hosts), u.PrimaryHost, u.DisplayName
		f.cur.Store(&next)
		log.Info("tenant record changed", "hosts", next.Hosts, "primary_host", next.PrimaryHost)
	}
}
