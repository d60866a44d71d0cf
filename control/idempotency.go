package control

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// idempotency remembers, per operator token and Idempotency-Key, the
// answer of a create for IdempotencyTTL: a retried request (same key,
// same body) gets the first answer again, invite link included, without
// creating anything; one still running is waited for. A key used again
// with another body is refused. Answers are kept in this server's memory;
// a key it does not remember is looked up in the audit trail (see
// Server.earlierCreate), so a retry after a restart creates nothing
// either.
type idempotency struct {
	mu      sync.Mutex
	entries map[string]*idemEntry
	swept   time.Time
}

// IdempotencyTTL is how long a create's answer is kept for retries.
const IdempotencyTTL = 24 * time.Hour

type idemEntry struct {
	body [32]byte // SHA-256 of the request body
	done chan struct{}
	res  idemResult
	at   time.Time
}

type idemResult struct {
	code     int
	body     []byte
	detail   string // the error, for the audit trail
	schoolID string // of the school created
	replayed bool   // an earlier create found in the audit trail
}

var errKeyReused = errors.New("this Idempotency-Key was used with another request body; use a new key for a new request")

// do runs fn once per key; replay says whether res is a kept answer.
func (m *idempotency) do(ctx context.Context, key string, body []byte, fn func() idemResult) (res idemResult, replay bool, err error) {
	sum := sha256.Sum256(body)
	now := time.Now()
	m.mu.Lock()
	if m.entries == nil {
		m.entries = map[string]*idemEntry{}
	}
	if now.Sub(m.swept) > time.Minute {
		for k, e := range m.entries {
			if now.Sub(e.at) > IdempotencyTTL {
				delete(m.entries, k)
			}
		}
		m.swept = now
	}
	e, ok := m.entries[key]
	if !ok {
		e = &idemEntry{body: sum, done: make(chan struct{}), at: now}
		m.entries[key] = e
		m.mu.Unlock()
		e.res = fn()
		close(e.done)
		if e.res.code >= 500 { // nothing was kept (the create undid itself): a retry runs again
			m.mu.Lock()
			delete(m.entries, key)
			m.mu.Unlock()
		}
		return e.res, false, nil
	}
	m.mu.Unlock()
	if e.body != sum {
		return idemResult{}, false, errKeyReused
	}
	select {
	case <-e.done:
		return e.res, true, nil
	case <-ctx.Done():
		return idemResult{}, false, ctx.Err()
	}
}
