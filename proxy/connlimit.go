package proxy

import (
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/campus-saas/campus/internal/lograte"
)

// One client address cannot hold every connection the proxy can have
// (issue 25): each idle or slow connection costs a file descriptor and
// memory (a TLS connection some tens of KB) until a server timeout ends
// it, and one address can open tens of thousands, enough to use up the
// process's descriptors so that nobody reaches any school. LimitListener
// caps the connections open at once per client address; the operator's
// load balancers (TrustedProxies) are exempt.

// DefaultMaxConnsPerAddr is the default cap: far above what browsers open
// (one HTTP/2 connection per site, up to six over HTTP/1.1), so a school's
// NAT with hundreds of browsers behind it stays under it.
const DefaultMaxConnsPerAddr = 1024

// MetricConnsRefused counts connections closed at once because their
// address had MaxConnsPerAddr open.
const MetricConnsRefused = "campus_proxy_connections_refused_total"

// LimitListener returns ln, whose connections from one client address
// (but the TrustedProxies) are at most Config.MaxConnsPerAddr at a time:
// one over it is closed as soon as it is accepted, counted in
// MetricConnsRefused and logged sampled. Each connection it gives also
// tells when the server has caught up with the bytes read from it, which
// the rapid-reset guard waits for (abuse.go). Wrap the TCP listener, under
// any TLS.
func (p *Proxy) LimitListener(ln net.Listener) net.Listener {
	l := &limitListener{Listener: ln, p: p, open: map[netip.Addr]int{}}
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

	mu   sync.Mutex
	open map[netip.Addr]int // connections open by address
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := addrOf(c.RemoteAddr())
		if !a.IsValid() || l.p.trusted(a) || l.p.cfg.MaxConnsPerAddr < 0 {
			return &clientConn{Conn: c}, nil
		}
		l.mu.Lock()
		if l.open[a] >= l.p.cfg.MaxConnsPerAddr {
			l.mu.Unlock()
			_ = c.Close()
			l.p.metrics.connsRefused.Inc()
			if l.log.Allow(a.String()) {
				l.p.log.Warn("connection refused: too many open from one address", "addr", a.String(),
					"max", l.p.cfg.MaxConnsPerAddr)
			}
			continue
		}
		l.open[a]++
		l.mu.Unlock()
		return &clientConn{Conn: c, l: l, addr: a}, nil
	}
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
		Help: "Client connections closed as soon as accepted because their address had the most connections open allowed (MaxConnsPerAddr).",
	})
}
