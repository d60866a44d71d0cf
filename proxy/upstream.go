package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// syncTransport is the request path's client for the common request: GET
// or HEAD without a body and without an Upgrade. It does the whole round
// trip on the calling goroutine over pooled HTTP/1.1 keep-alive
// connections, with the standard library's own request writer
// ((*http.Request).Write) and response parser (http.ReadResponse).
// net/http.Transport hands every request to two goroutines per connection
// (a writer and a reader) and back, which on a small machine costs more
// CPU than the forwarding itself; everything else (bodies, upgrades,
// other methods) still goes through it.
//
// A connection serves one request at a time and goes back to its
// instance's idle list only when its response was read to the end, with
// nothing after it: an app that sends more than it announced loses the
// connection, and the extra bytes never reach another request. Idle
// lists are per instance address, as net/http.Transport keeps them.
type syncTransport struct {
	dialer         net.Dialer
	headerTimeout  time.Duration // for the response headers (UpstreamTimeout)
	idleTimeout    time.Duration
	maxIdlePerHost int

	mu   sync.Mutex
	idle map[string][]*upConn // by address, most recently used last
	reap *time.Timer          // closes expired idle connections; nil when none is idle
}

// maxResponseHeader bounds what an app may send before its response's
// body (net/http.Transport's MaxResponseHeaderBytes plays this part).
const maxResponseHeader = 1 << 20

var errHeaderTooLarge = errors.New("app's response headers exceed 1 MiB")

// limitReader fails reads beyond n bytes; n is set for each response's
// headers and lifted for its body.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// upConn is one connection to an app instance.
type upConn struct {
	addr   string
	conn   net.Conn
	limit  *limitReader // under br
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

func newSyncTransport(cfg Config) *syncTransport {
	return &syncTransport{
		dialer:         net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout:  cfg.UpstreamTimeout,
		idleTimeout:    60 * time.Second, // below the apps' idle timeout, so the proxy closes first
		maxIdlePerHost: 128,
		idle:           map[string][]*upConn{},
	}
}

// handles reports whether syncTransport takes req: GET or HEAD, no body,
// no protocol upgrade, no 100-continue.
func (t *syncTransport) handles(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == "" &&
		req.URL.Scheme == "http"
}

// errStaleConn is a reused connection the app had already closed.
var errStaleConn = errors.New("idle upstream connection closed by the app")

func (t *syncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for {
		c, reused, err := t.get(req.Context(), addr)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(c, req)
		if err == nil {
			return resp, nil
		}
		c.conn.Close()
		if reused && errors.Is(err, errStaleConn) && req.Context().Err() == nil {
			continue // a GET or HEAD that the app never saw: on a new connection
		}
		return nil, err
	}
}

func (t *syncTransport) roundTrip(c *upConn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// The client going away ends the exchange at once: any blocked read
	// or write fails.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		stop()
		if isReset(err) {
			return nil, errStaleConn
		}
		return nil, err
	}
	c.conn.SetReadDeadline(time.Now().Add(t.headerTimeout))
	if ctx.Err() != nil {
		// The client went away while the request was written: the
		// AfterFunc's deadline was just replaced, and the app would keep
		// the request until the header timeout. Closed instead (issue 25).
		stop()
		return nil, ctx.Err()
	}
	c.limit.n = maxResponseHeader + int64(c.br.Buffered())
	var resp *http.Response
	for {
		if _, err := c.br.Peek(1); err != nil {
			stop()
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return nil, errStaleConn
			}
			return nil, err
		}
		r, err := http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			return nil, err
		}
		if r.StatusCode >= 100 && r.StatusCode < 200 && r.StatusCode != http.StatusSwitchingProtocols {
			continue // informational (103 Early Hints): not forwarded on this path
		}
		resp = r
		break
	}
	c.conn.SetReadDeadline(time.Time{})
	c.limit.n = math.MaxInt64 // the body: as long as the app says
	if ctx.Err() != nil {
		// The AfterFunc may have run before the line above undid it.
		stop()
		return nil, ctx.Err()
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		return nil, errors.New("app switched protocols without being asked to")
	}
	b := &upBody{t: t, c: c, rc: resp.Body, stop: stop, reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody { // HEAD, 204, 304, Content-Length: 0: done now
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// upBody returns its connection to the idle list once the response has
// been read to the end.
type upBody struct {
	t     *syncTransport
	c     *upConn
	rc    io.ReadCloser
	stop  func() bool
	reuse bool
	done  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *upBody) Close() error {
	b.finish(false) // not read to the end: the rest would reach the next request
	return nil
}

func (b *upBody) finish(complete bool) {
	if b.done {
		return
	}
	b.done = true
	cancelled := !b.stop() // the AfterFunc ran: the deadline is in the past
	if complete && b.reuse && !cancelled && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	b.c.conn.Close()
}

// get returns an idle connection to addr, or dials one.
func (t *syncTransport) get(ctx context.Context, addr string) (*upConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[addr]; len(list) > 0; list = t.idle[addr] {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		if now.Sub(c.idleAt) >= t.idleTimeout {
			c.conn.Close()
			continue
		}
		t.mu.Unlock()
		if idleClean(c.conn) {
			return c, true, nil
		}
		c.conn.Close() // closed by the app, or it sent what nobody asked for
		t.mu.Lock()
	}
	t.mu.Unlock()
	conn, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	limit := &limitReader{r: conn}
	return &upConn{addr: addr, conn: conn, limit: limit, br: bufio.NewReaderSize(limit, 32<<10), bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// put makes c idle.
func (t *syncTransport) put(c *upConn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[c.addr]
	if len(list) >= t.maxIdlePerHost {
		c.conn.Close()
		return
	}
	t.idle[c.addr] = append(list, c)
	if t.reap == nil {
		t.reap = time.AfterFunc(t.idleTimeout, t.reapIdle)
	}
}

// reapIdle closes connections idle for longer than idleTimeout.
func (t *syncTransport) reapIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.idle {
		keep := list[:0]
		for _, c := range list {
			if now.Sub(c.idleAt) >= t.idleTimeout {
				c.conn.Close()
			} else {
				keep = append(keep, c)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = keep
		}
	}
	t.reap = nil
	if len(t.idle) > 0 {
		t.reap = time.AfterFunc(t.idleTimeout/2, t.reapIdle)
	}
}

// CloseIdle closes every idle connection.
func (t *syncTransport) CloseIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.idle {
		for _, c := range list {
			c.conn.Close()
		}
		delete(t.idle, addr)
	}
}
