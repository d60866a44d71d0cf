// Package consulhttp builds the Consul API clients of Campus: bounded and
// polite. Each client holds at most MaxConns connections to its agent
// (Consul's agent refuses more than limits.http_max_conns_per_client, 200
// by default, from one client address, and every Campus process on a
// machine shares that address), and a 429 or 503 from Consul is answered
// by a few retries after capped exponential backoff with jitter, never a
// tight retry, before the caller gets an error that says what happened.
package consulhttp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Defaults for Options' zero fields.
const (
	DefaultMaxConns = 8
	DefaultAttempts = 5
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 2 * time.Second
)

// Options bound a client. The zero value takes the defaults.
type Options struct {
	// MaxConns caps the client's connections to its agent (dialing, in use
	// and idle); further requests wait for one. Blocking queries each hold
	// one for as long as they wait, so MaxConns must exceed the number of
	// blocking queries the client runs at once. Default 8.
	MaxConns int
	// Attempts is how many times a request Consul answered 429 or 503 is
	// sent in all (default 5), waiting between RetryMin and RetryMax
	// (doubling, with jitter) in between.
	Attempts           int
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(DefaultRetryMax, o.RetryMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Client is a Consul API client on a bounded, polite transport.
type Client struct {
	*api.Client
	http *http.Client
}

// CloseIdle closes the client's idle connections (they would otherwise
// count against the agent's limit until they time out).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// NewClient returns a Consul API client for ac (nil: api.DefaultConfig(),
// which honours the CONSUL_* environment variables) whose transport is
// capped at MaxConns connections and retries 429 and 503 politely. ac is
// not modified. An HttpClient already set in ac keeps its transport, wrapped
// by the retries (and capped when it is an *http.Transport).
func NewClient(ac *api.Config, o Options) (*Client, error) {
	o = o.withDefaults()
	if ac == nil {
		ac = api.DefaultConfig()
	}
	cfg := *ac
	if cfg.HttpClient == nil && cfg.Transport == nil {
		// api.NewClient applies the TLS settings to this transport.
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Transport != nil {
		t := cfg.Transport.Clone()
		capConns(t, o.MaxConns)
		cfg.Transport = t
	}
	if cfg.HttpClient != nil {
		hc := *cfg.HttpClient
		cfg.HttpClient = &hc
	}
	client, err := api.NewClient(&cfg) // sets cfg.HttpClient when nil
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", cfg.Address, err)
	}
	base := cfg.HttpClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*http.Transport); ok && ac.HttpClient == nil && t.MaxConnsPerHost != o.MaxConns {
		// A unix socket address gets a transport of api.NewClient's own.
		capConns(t, o.MaxConns)
	}
	cfg.HttpClient.Transport = &Transport{Base: base, opts: o}
	return &Client{Client: client, http: cfg.HttpClient}, nil
}

func capConns(t *http.Transport, n int) {
	t.MaxConnsPerHost = n
	t.MaxIdleConnsPerHost = n
}

// Transport retries the requests Consul answers 429 (too many connections
// or requests from this address) or 503 (rate limited, or no leader to
// take a write): Consul answered without acting on them, so even writes
// are safe to send again.
type Transport struct {
	Base http.RoundTripper
	opts Options
}

// OverloadError is returned when Consul still answered 429 or 503 after
// the last attempt.
type OverloadError struct {
	Method, Path string
	Status       int
	Message      string // Consul's answer, trimmed
	Attempts     int
	Elapsed      time.Duration
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("consul answered %d %s (%s) to %s %s %d times in %s, with backoff in between; giving up",
		e.Status, http.StatusText(e.Status), e.Message, e.Method, e.Path, e.Attempts, e.Elapsed.Round(time.Millisecond))
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	wait := t.opts.RetryMin
	for attempt := 1; ; attempt++ {
		resp, err := t.Base.RoundTrip(req)
		var msg string
		switch {
		case err != nil && refusedUnread(err):
			// The agent's connection limiter answers 429 on a new
			// connection at once and closes it, without reading the
			// request; net/http may see that answer before it has sent
			// the request, and fail it so.
			resp, msg = &http.Response{StatusCode: http.StatusTooManyRequests}, "the agent answered before reading the request and closed the connection: its per-client connection limit"
		case err != nil || !overloaded(resp.StatusCode):
			return resp, err
		case req.Body != nil && req.Body != http.NoBody && req.GetBody == nil:
			return resp, nil // cannot send the body again
		default:
			msg = message(resp)
		}
		if attempt >= t.opts.Attempts {
			return nil, &OverloadError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode,
				Message: msg, Attempts: attempt, Elapsed: time.Since(start)}
		}
		d := jitter(wait)
		if ra := retryAfter(resp); ra > d {
			d = min(ra, t.opts.RetryMax)
		}
		wait = min(wait*2, t.opts.RetryMax)
		t.opts.Logger.Warn("consul is shedding load; retrying", "status", resp.StatusCode, "message", msg,
			"method", req.Method, "path", req.URL.Path, "attempt", attempt, "retry_in", d.Round(time.Millisecond))
		if err := sleep(req.Context(), d); err != nil {
			return nil, fmt.Errorf("waiting to retry %s %s after consul answered %d: %w", req.Method, req.URL.Path, resp.StatusCode, err)
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("retry %s %s: %w", req.Method, req.URL.Path, err)
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// refusedUnread reports whether err is net/http's error for a connection
// on which the server answered (unasked) and closed before the request was
// read: with Consul, the connection limiter's 429.
func refusedUnread(err error) bool {
	return strings.Contains(err.Error(), "readLoopPeekFailLocked")
}

func overloaded(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// message reads and closes the body of a refused request.
func message(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	s := strings.TrimSpace(string(b))
	if s == "" {
		s = "no message"
	}
	return s
}

// retryAfter is the server's Retry-After in seconds, if any.
func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// jitter is somewhere in [d/2, d].
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
