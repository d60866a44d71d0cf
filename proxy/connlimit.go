package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/lograte"
)

// One client address cannot hold every connection the proxy can have
// (issue 25): each idle or slow connection costs a file descriptor and
// memory (a TLS connection some tens of KB) until a server timeout ends
// it, and one address can open tens of thousands, enough to use up the
// process's descriptors so that nobody reaches any school. Nor can it
// make the proxy do TLS handshakes at will: a handshake costs the server
// about half a millisecond of CPU (X25519 with ML-KEM, an ECDSA
// signature), and a client that breaks each request's body (the
// connection must then be closed) or just connects and hangs up makes the
// proxy do hundreds a second from one address, which other schools'
// visitors wait behind. LimitListener caps the connections open at once
// per client address; LimitTLSListener also the connections accepted per
// second from one address (a token bucket: ConnRatePerAddr a second,
// ConnBurstPerAddr at once), since there each costs a handshake (a plain
// HTTP connection costs about nothing to accept, and the machine's own
// load tools open many). One over either is closed as soon as it is
// accepted, before any handshake. The operator's load balancers
// (TrustedProxies) are exempt.

// DefaultMaxConnsPerAddr is the default cap: far above what browsers open
// (one HTTP/2 connection per site, up to six over HTTP/1.1), so a school's
// NAT with hundreds of browsers behind it stays under it.
const DefaultMaxConnsPerAddr = 1024

// Defaults of the new connections accepted from one address: a browser
// opens one HTTP/2 connection per site (six over HTTP/1.1) and keeps it,
// so a school's NAT where a class of 60 opens the site at once stays
// within the burst, and a whole school arriving within the refill.
const (
	DefaultConnRatePerAddr  = 50  // a second
	DefaultConnBurstPerAddr = 400 // at once

	// maxRateAddrs bounds the addresses whose bucket is not full that
	// the listener remembers; past it, a new address is not limited by
	// rate (only by MaxConnsPerAddr) until some buckets fill up again.
	maxRateAddrs = 65536
)

// MetricConnsRefused counts connections closed at once because their
// address had MaxConnsPerAddr open or opened connections faster than
// ConnRatePerAddr.
const MetricConnsRefused = "campus_proxy_connections_refused_total"

// LimitListener returns ln, whose connections from one client address
// (but the TrustedProxies) are at most Config.MaxConnsPerAddr at a time:
// one over it is closed as soon as it is accepted, counted in
// MetricConnsRefused and logged sampled. Each connection it gives also
// tells when the server has caught up with the bytes read from it, which
// the rapid-reset guard waits for (abuse.go). Wrap the TCP listener, under
// any TLS.
func (p *Proxy) LimitListener(ln net.Listener) net.Listener { return p.limitListener(ln, false) }

// LimitTLSListener is LimitListener for the TCP listener under TLS: the
// new connections of one address are also at most ConnRatePerAddr a
// second (ConnBurstPerAddr at once), since each costs a handshake.
func (p *Proxy) LimitTLSListener(ln net.Listener) net.Listener { return p.limitListener(ln, true) }

func (p *Proxy) limitListener(ln net.Listener, handshakes bool) net.Listener {
	l := &limitListener{Listener: ln, p: p, open: map[netip.Addr]int{}}
	if handshakes && p.cfg.ConnRatePerAddr >= 0 {
		l.rates = map[netip.Addr]*rate.Limiter{}
	}
	l.log = lograte.New(p.cfg.SampleEvery, func(n int, last string) {
		p.log.Warn("connections refused: too many open from one address", "count", n,
			"period", p.cfg.SampleEvery.String(), "last", last)
	})
	return l
}

type limitListener struct {
	net.Listener
	p   *Proxy
	log *lograte.Limiter

	mu    sync.Mutex
	open  map[netip.Addr]int           // connections open by address
	rates map[netip.Addr]*rate.Limiter // new connections by address (nil: no bound); a full bucket may be forgotten
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := addrOf(c.RemoteAddr())
		if !a.IsValid() || l.p.trusted(a) {
			return &clientConn{Conn: c}, nil
		}
		l.mu.Lock()
		why := ""
		switch {
		case l.p.cfg.MaxConnsPerAddr >= 0 && l.open[a] >= l.p.cfg.MaxConnsPerAddr:
			why = "too many open from one address"
		case !l.allow(a, time.Now()):
			why = "too many new connections a second from one address"
		}
		if why != "" {
			l.mu.Unlock()
			l.p.metrics.connsRefused.Inc() // before the close the client sees
			_ = c.Close()
			if l.log.Allow(a.String() + ": " + why) {
				l.p.log.Warn("connection refused: "+why, "addr", a.String(),
					"max_open", l.p.cfg.MaxConnsPerAddr, "per_second", l.p.cfg.ConnRatePerAddr)
			}
			continue
		}
		if l.p.cfg.MaxConnsPerAddr < 0 {
			l.mu.Unlock()
			return &clientConn{Conn: c}, nil
		}
		l.open[a]++
		l.mu.Unlock()
		return &clientConn{Conn: c, l: l, addr: a}, nil
	}
}

// allow takes a token of a's bucket of new connections (l.mu held).
func (l *limitListener) allow(a netip.Addr, now time.Time) bool {
	if l.rates == nil {
		return true
	}
	lim := l.rates[a]
	if lim == nil {
		if len(l.rates) >= maxRateAddrs {
			burst := float64(l.p.cfg.ConnBurstPerAddr)
			for b, bl := range l.rates {
				if bl.TokensAt(now) >= burst {
					delete(l.rates, b) // as good as new
				}
			}
			if len(l.rates) >= maxRateAddrs {
				return true
			}
		}
		lim = rate.NewLimiter(rate.Limit(l.p.cfg.ConnRatePerAddr), l.p.cfg.ConnBurstPerAddr)
		l.rates[a] = lim
	}
	cost := 1
	if l.p.floods.recent(a, now) {
		cost = min(FloodConnCost, l.p.cfg.ConnBurstPerAddr) // abuse.go
	}
	return lim.AllowN(now, cost)
}

func (l *limitListener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a]--; l.open[a] <= 0 {
		delete(l.open, a)
	}
}

// clientConn is a client connection of a LimitListener: it gives its
// address's slot back when closed (l set), and its reads tell readWatch
// when the server has taken in every byte read before (abuse.go).
type clientConn struct {
	net.Conn
	l     *limitListener // nil: not counted
	addr  netip.Addr
	once  sync.Once
	reads readWatch
}

func (c *clientConn) Read(b []byte) (int, error) {
	c.reads.start()
	defer c.reads.end()
	return c.Conn.Read(b)
}

func (c *clientConn) Close() error {
	if c.l != nil {
		c.once.Do(func() { c.l.release(c.addr) })
	}
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close a plain connection after an error
// answer, as it does for a *net.TCPConn.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// clientConnOf finds the clientConn under c (a *tls.Conn's, or c itself);
// nil when c did not come from a LimitListener.
func clientConnOf(c net.Conn) *clientConn {
	for {
		switch x := c.(type) {
		case *clientConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func newConnsRefused() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricConnsRefused,
		Help: "Client connections closed as soon as accepted because their address had the most connections open allowed (MaxConnsPerAddr) or opened them faster than allowed (ConnRatePerAddr).",
	})
}
