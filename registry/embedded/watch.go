package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/campus-saas/campus/registry"
)

// pollerLinger keeps the poller running this long after the last watcher
// left, so that loops over Watch do not restart it on every turn.
const pollerLinger = time.Second

// advance records that the version v exists and wakes the watchers if it
// is newer than anything seen so far. Everything that learns a version
// (writes, snapshots, the poller) calls it, so a watcher that read an old
// snapshot after taking the channel is always woken.
func (r *Registry) advance(v uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v <= r.seen {
		return
	}
	r.seen = v
	close(r.changed)
	r.changed = make(chan struct{})
}

// Watch implements registry.Registry.
func (r *Registry) Watch(ctx context.Context, after uint64) (registry.Snapshot, error) {
	if after == 0 {
		return r.Snapshot(ctx)
	}
	r.mu.Lock()
	r.watchers++
	if !r.polling {
		select {
		case <-r.done:
		default:
			r.polling = true
			r.pollerWG.Add(1)
			go r.pollLoop()
		}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.watchers--
		if r.watchers == 0 {
			r.idleAt = time.Now()
		}
		r.mu.Unlock()
	}()

	for {
		r.mu.Lock()
		ch := r.changed // taken before reading, so no change is missed
		r.mu.Unlock()
		s, err := r.Snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return registry.Snapshot{}, ctx.Err()
			}
			return registry.Snapshot{}, err
		}
		if s.Version > after {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return registry.Snapshot{}, ctx.Err()
		case <-r.done:
			return registry.Snapshot{}, errClosed
		}
	}
}

// pollLoop notices writes made by other processes (and other handles):
// every poll interval it reads PRAGMA data_version on its own connection,
// which changes when any other connection commits, and only then reads the
// version. It stops with Close, or once nobody has watched for a while.
func (r *Registry) pollLoop() {
	defer r.pollerWG.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	var (
		p        *poller
		failures int
	)
	defer func() {
		if p != nil {
			p.close()
		}
	}()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		if p == nil {
			var err error
			p, err = r.newPoller(ctx)
			if err != nil {
				p = nil
				r.pollFailed(ctx, &failures, err)
			}
		} else if err := p.check(ctx); err != nil {
			p.close()
			p = nil
			r.pollFailed(ctx, &failures, err)
		} else {
			failures = 0
		}

		select {
		case <-r.done:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		if r.watchers == 0 && time.Since(r.idleAt) > pollerLinger {
			r.polling = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

func (r *Registry) pollFailed(ctx context.Context, failures *int, err error) {
	if ctx.Err() != nil {
		return
	}
	*failures++
	if *failures == 1 || *failures%500 == 0 { // about every 10s at 20ms
		r.log.Warn("registry change poll failed; watchers in this process may miss changes by other processes",
			"err", err, "failures", *failures)
	}
}

// poller holds the connection the poll runs on: PRAGMA data_version is
// per connection.
type poller struct {
	r    *Registry
	conn *sql.Conn
	dv   int64
}

func (r *Registry) newPoller(ctx context.Context) (*poller, error) {
	conn, err := r.rdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("poll connection: %w", err)
	}
	p := &poller{r: r, conn: conn}
	// Baseline first, then the version: a commit in between is seen by
	// the version read, one after by the next data_version.
	if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&p.dv); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read data_version: %w", err)
	}
	if err := p.readVersion(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

func (p *poller) check(ctx context.Context) error {
	var dv int64
	if err := p.conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv); err != nil {
		return fmt.Errorf("read data_version: %w", err)
	}
	if dv == p.dv {
		return nil
	}
	p.dv = dv
	return p.readVersion(ctx)
}

func (p *poller) readVersion(ctx context.Context) error {
	var v uint64
	if err := p.conn.QueryRowContext(ctx, `SELECT version FROM meta WHERE id = 1`).Scan(&v); err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	p.r.advance(v)
	return nil
}

func (p *poller) close() { p.conn.Close() }
