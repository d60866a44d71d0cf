package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
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
//   - Before that check an HTTP/2 request waits until the server has
//     acted on every frame read from its connection so far (catchUp): Go's
//     HTTP/2 server reads frames in one goroutine and acts on them in
//     another (its serve loop), and starts the handler of a HEADERS in a
//     goroutine of its own, so without the wait the handler can reach the
//     pick before the serve loop has read the RST_STREAM that came in the
//     same packet. The reader hands the serve loop one frame at a time and
//     asks TLS for the next only after the serve loop has acted on the
//     last; TLS reads the socket only when every byte it decrypted has
//     been taken. So once a Read of the raw connection has started after
//     the one that brought the HEADERS, every frame in the bytes read
//     before has been acted on: a reset sent with its request (in the same
//     write, hence the same TLS record) has cancelled the request's
//     context, and the request is not forwarded. The wait is for a
//     goroutine that is ready to run (microseconds) and costs nothing when
//     the reader is already waiting on the socket, as it is between a
//     browser's requests. It needs the connection from LimitListener.
//   - A request on a suspect HTTP/2 connection then waits up to ResetHold
//     for a reset that comes in a later packet (resetBefore); a flood's
//     stream is reset within microseconds of its start and so never waits
//     the hold out. Suspect
//     are a connection that has spent SuspectAfter of its reset budget
//     (cancelled that many more requests than the budget's rate gave back
//     since) and every connection from an address one of whose
//     connections was told GOAWAY in the last FloodMemory (the flood's
//     next connections): an ordinary browser, which cancels a request now
//     and then, pays nothing; one that cancels a page's worth of requests
//     at once pays at most ResetHold on its next requests for about half
//     a second.
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
	DefaultResetHold   = 5 * time.Millisecond // a request on a suspect connection waits at most this for its reset
	// GoAwayGrace is how long a connection told GOAWAY for resetting too
	// many requests stays open for its streams in flight.
	GoAwayGrace = 250 * time.Millisecond
	// SuspectAfter is how much of its reset budget a connection spends
	// before its requests wait up to ResetHold; FloodMemory how long after
	// a GOAWAY for resetting too many the requests of every connection
	// from that address do.
	SuspectAfter = 10
	FloodMemory  = time.Minute
	// A connection from an address that flooded in the last FloodMemory
	// has a reset budget of FloodBurst at once (ResetRate a second), and
	// each new TLS connection from that address costs FloodConnCost
	// tokens of the address's bucket of new connections (connlimit.go),
	// so a flood from one address makes a few dozen connections a minute
	// cut short, not hundreds each handled up to the full budget.
	FloodBurst    = SuspectAfter
	FloodConnCost = 10
	// maxFloodAddrs bounds the addresses remembered for FloodMemory.
	maxFloodAddrs = 4096
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
	raw    *clientConn                  // nil when not from LimitListener
	addr   netip.Addr                   // the peer's; invalid when not TCP
	resets atomic.Pointer[rate.Limiter] // nil until the first cancelled request
	goaway atomic.Bool                  // over budget: every answer says GOAWAY
}

type connKey struct{}

// ConnContext is the http.Server ConnContext of the proxy's listeners: it
// gives each client connection the state of its reset budget.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{conn: c, raw: clientConnOf(c), addr: addrOf(c.RemoteAddr())})
}

func connFrom(ctx context.Context) *connState {
	cs, _ := ctx.Value(connKey{}).(*connState)
	return cs
}

// limiter returns the connection's reset budget, made on first use: burst
// at once, or at most FloodBurst when the address flooded lately.
func (p *Proxy) limiter(cs *connState, now time.Time) *rate.Limiter {
	if l := cs.resets.Load(); l != nil {
		return l
	}
	burst := p.cfg.ResetBurst
	if p.floods.recent(cs.addr, now) {
		burst = min(burst, FloodBurst)
	}
	l := rate.NewLimiter(rate.Limit(p.cfg.ResetRate), burst)
	if cs.resets.CompareAndSwap(nil, l) {
		return l
	}
	return cs.resets.Load()
}

// resetBefore reports whether the request's client reset it (or went
// away) already. On HTTP/2 it first waits until the server has acted on
// the frames read with the request's (catchUp), and on a suspect
// connection (see above) up to ResetHold more for the reset.
func (p *Proxy) resetBefore(r *http.Request) bool {
	ctx := r.Context()
	if r.ProtoMajor != 2 {
		return ctx.Err() != nil
	}
	cs := connFrom(ctx)
	if cs != nil && cs.raw != nil {
		p.catchUp(ctx, cs.raw)
	}
	if p.cfg.ResetHold > 0 {
		if cs != nil && !cs.goaway.Load() && p.suspect(cs, time.Now()) {
			t := time.NewTimer(p.cfg.ResetHold)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	return ctx.Err() != nil
}

// catchUpLimit bounds catchUp's wait (or ResetHold, when longer): the
// reader is a goroutine ready to run, this is never reached but by a
// server starved of CPU, and then the request goes on as without the wait.
const catchUpLimit = time.Second

// catchUp waits until the HTTP/2 server has acted on every frame of the
// bytes read from c so far (see above), the request's context ends, or
// catchUpLimit passes.
func (p *Proxy) catchUp(ctx context.Context, c *clientConn) {
	next := c.reads.caughtUp()
	if next == nil {
		return
	}
	t := time.NewTimer(max(catchUpLimit, p.cfg.ResetHold))
	defer t.Stop()
	select {
	case <-next:
	case <-ctx.Done():
	case <-t.C:
	}
}

// readWatch follows the reads of a client connection (clientConn): a
// connection's reads are made one at a time, by the server's reader.
type readWatch struct {
	mu      sync.Mutex
	reading bool          // a Read is under way
	next    chan struct{} // closed when the next Read starts; nil until waited for
}

func (w *readWatch) start() {
	w.mu.Lock()
	w.reading = true
	if w.next != nil {
		close(w.next)
		w.next = nil
	}
	w.mu.Unlock()
}

func (w *readWatch) end() {
	w.mu.Lock()
	w.reading = false
	w.mu.Unlock()
}

// caughtUp returns nil when a Read is under way (it started after every
// earlier one returned, so the bytes they brought were all taken), else a
// channel closed when the next Read starts.
func (w *readWatch) caughtUp() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reading {
		return nil
	}
	if w.next == nil {
		w.next = make(chan struct{})
	}
	return w.next
}

// suspect reports whether the requests of a connection wait for resets.
func (p *Proxy) suspect(cs *connState, now time.Time) bool {
	if l := cs.resets.Load(); l != nil && l.TokensAt(now) <= float64(l.Burst()-min(SuspectAfter, l.Burst()/2)) {
		return true
	}
	return p.floods.recent(cs.addr, now)
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
	now := time.Now()
	if !cs.goaway.Load() {
		if p.limiter(cs, now).AllowN(now, 1) {
			return
		}
		// Remembered before anybody can see the GOAWAY, so that the
		// client's next connection is suspect from its first stream. Not
		// the operator's load balancer: everybody behind it would wait.
		if !p.trusted(cs.addr) {
			p.floods.add(cs.addr, now)
		}
		if cs.goaway.CompareAndSwap(false, true) {
			p.metrics.resetFloods.Inc()
			time.AfterFunc(GoAwayGrace, func() { _ = cs.conn.Close() })
		}
	}
	goingAway(ex.w)
}

// floodAddrs remembers the addresses of connections told GOAWAY for
// resetting too many requests, for FloodMemory, at most maxFloodAddrs.
type floodAddrs struct {
	n  atomic.Int32 // len(at), read without the lock
	mu sync.Mutex
	at map[netip.Addr]time.Time // when the address flooded last
}

func (f *floodAddrs) add(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at == nil {
		f.at = map[netip.Addr]time.Time{}
	}
	if _, ok := f.at[a]; !ok && len(f.at) >= maxFloodAddrs {
		for b, t := range f.at {
			if now.Sub(t) >= FloodMemory {
				delete(f.at, b)
			}
		}
		if len(f.at) >= maxFloodAddrs {
			return // the new address's next connections are suspect once they reset
		}
	}
	f.at[a] = now
	f.n.Store(int32(len(f.at)))
}

func (f *floodAddrs) recent(a netip.Addr, now time.Time) bool {
	if f.n.Load() == 0 || !a.IsValid() {
		return false
	}
	f.mu.Lock()
	t, ok := f.at[a]
	f.mu.Unlock()
	return ok && now.Sub(t) < FloodMemory
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
