package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/campus-saas/campus/internal/lograte"
)

// Cheap abuse (issue 25): what one client can cause at will must cost
// neither the schools nor the log. HTTP/2 rapid reset (HEADERS then
// RST_STREAM, over and over) is answered three ways:
//
//   - A request whose client reset it (its context ended) before an
//     instance was picked is not forwarded: ServeHTTP and the transport
//     check before they pick (forward.go). Nor is any request of a
//     connection told GOAWAY (below): 429.
//   - Each HTTP/2 connection has a budget of cancelled requests
//     (ResetRate per second, ResetBurst at once); a connection over it is
//     told GOAWAY (no new stream is served), through net/http's rule that
//     a "Connection: close" answer on HTTP/2 starts a GOAWAY, and every
//     later answer on it says the same; GoAwayGrace later it is closed,
//     so that a client that ignores the GOAWAY stops costing the server
//     the decoding of its frames. Go's own guard only counts handlers that
//     had not started yet.
//   - Cancelled requests and malformed bodies are counted
//     (MetricRequests, code 499 or 400, and MetricResetFloods) and their
//     access-log lines sampled: the first after a quiet period, then one
//     line per SampleEvery with the count.

// Defaults of the per-connection reset budget and of access-log sampling.
const (
	DefaultResetRate   = 20  // cancelled requests per second per HTTP/2 connection
	DefaultResetBurst  = 100 // at once
	DefaultSampleEvery = 10 * time.Second
	// GoAwayGrace is how long a connection told GOAWAY for resetting too
	// many requests stays open for its streams in flight.
	GoAwayGrace = 250 * time.Millisecond
)

// MetricResetFloods counts HTTP/2 connections told GOAWAY for cancelling
// requests faster than their budget.
const MetricResetFloods = "campus_proxy_reset_flood_goaways_total"

// Kinds of sampled access-log lines.
const (
	sampleCancelled = "cancelled"      // the client went away or reset the stream (499)
	sampleMalformed = "malformed_body" // the client's body was malformed (400)
)

// connState is what the proxy keeps per client connection (ConnContext).
type connState struct {
	conn   net.Conn
	resets atomic.Pointer[rate.Limiter] // nil until the first cancelled request
	goaway atomic.Bool                  // over budget: every answer says GOAWAY
}

type connKey struct{}

// ConnContext is the http.Server ConnContext of the proxy's listeners: it
// gives each client connection the state of its reset budget.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{conn: c})
}

func connFrom(ctx context.Context) *connState {
	cs, _ := ctx.Value(connKey{}).(*connState)
	return cs
}

// limiter returns the connection's reset budget, made on first use.
func (cs *connState) limiter(r float64, burst int) *rate.Limiter {
	if l := cs.resets.Load(); l != nil {
		return l
	}
	l := rate.NewLimiter(rate.Limit(r), burst)
	if cs.resets.CompareAndSwap(nil, l) {
		return l
	}
	return cs.resets.Load()
}

// resetBefore reports whether the request's client reset it (or went
// away) already. On an HTTP/2 connection that has cancelled requests
// before, it first lets the connection's reader run: a rapid-reset client
// sends the RST_STREAM in the same packet as the HEADERS, and the reader
// processes it right after starting this handler.
func resetBefore(r *http.Request) bool {
	if r.ProtoMajor == 2 {
		if cs := connFrom(r.Context()); cs != nil && cs.resets.Load() != nil {
			runtime.Gosched()
		}
	}
	return r.Context().Err() != nil
}

// overBudget reports whether the request came on a connection told GOAWAY
// for resetting too many requests: its streams opened before the GOAWAY
// are answered 429 by the proxy, never forwarded.
func overBudget(r *http.Request) bool {
	cs := connFrom(r.Context())
	return cs != nil && cs.goaway.Load()
}

// goingAway marks an answer on a connection over its budget: on HTTP/2 it
// makes net/http send GOAWAY.
func goingAway(w http.ResponseWriter) { w.Header().Set("Connection", "close") }

// cancelled charges a cancelled HTTP/2 request to its connection's budget
// and answers GOAWAY (through w, whose answer is not written yet) when the
// budget is spent.
func (p *Proxy) cancelled(ex *exchange) {
	if ex.r.ProtoMajor != 2 {
		return
	}
	cs := connFrom(ex.r.Context())
	if cs == nil {
		return
	}
	if cs.goaway.Load() || !cs.limiter(p.cfg.ResetRate, p.cfg.ResetBurst).Allow() {
		if cs.goaway.CompareAndSwap(false, true) {
			p.metrics.resetFloods.Inc()
			time.AfterFunc(GoAwayGrace, func() { _ = cs.conn.Close() })
		}
		goingAway(ex.w)
	}
}

// samplers are the access-log samplers by kind.
type samplers map[string]*lograte.Limiter

func newSamplers(access *slog.Logger, every time.Duration) samplers {
	s := samplers{}
	for _, kind := range []string{sampleCancelled, sampleMalformed} {
		s[kind] = lograte.New(every, func(n int, last string) {
			access.LogAttrs(context.Background(), slog.LevelInfo, "requests sampled",
				slog.String("kind", kind), slog.Int("count", n), slog.String("period", every.String()),
				slog.String("last", last))
		})
	}
	return s
}

func newResetFloods() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricResetFloods,
		Help: "HTTP/2 connections told GOAWAY for cancelling (resetting) requests faster than their budget.",
	})
}
