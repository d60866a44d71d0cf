package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Headers the proxy owns on forwarded requests.
const (
	HeaderTenant    = "X-Campus-Tenant" // the tenant the proxy routed to; client copies are dropped
	HeaderRequestID = "X-Request-Id"    // kept from the client when well-formed, else generated
)

// maxAttempts bounds how many instances one request is sent to.
const maxAttempts = 3

// clientSet are request headers a client must not be able to set: the
// proxy sets its own.
var clientSet = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", HeaderTenant}

// newTransport is the one transport shared by every request to every app.
// Apps are on loopback or a private network: plain HTTP/1.1 with a large
// idle pool is fastest and keeps connection reuse high.
func newTransport(cfg Config) *http.Transport {
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never send tenant traffic through $HTTP_PROXY
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   128,              // per app instance: covers bursts without re-dialling
		IdleConnTimeout:       60 * time.Second, // below the apps' idle timeout, so the proxy closes first
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass the app's encoding through untouched
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    &retryTransport{p: p, base: p.upstream, sync: newSyncTransport(p.cfg)},
		BufferPool:   &bufferPool{},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
}

// instanceURL is the target Rewrite sets; retryTransport puts the chosen
// instance's address in its place for each attempt.
var instanceURL = &url.URL{Scheme: "http", Host: "instance.invalid"}

// rewrite prepares the outgoing request: the app sees the client's Host,
// forwarding headers set by the proxy only (clientaddr.go), the tenant and
// a request id.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	pr.SetURL(instanceURL)
	pr.Out.Host = pr.In.Host
	// ReverseProxy already drops Forwarded and X-Forwarded-*; the list
	// makes the rule visible and covers the rest.
	for _, h := range clientSet {
		pr.Out.Header.Del(h)
	}
	// Some frameworks read "X_Campus_Tenant" as "X-Campus-Tenant".
	for k := range pr.Out.Header {
		if strings.ContainsRune(k, '_') && isClientSet(strings.ReplaceAll(k, "_", "-")) {
			delete(pr.Out.Header, k)
		}
	}
	client, https := p.client(pr.In)
	if client.IsValid() {
		pr.Out.Header.Set("X-Forwarded-For", client.String())
	}
	pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
	if https {
		pr.Out.Header.Set("X-Forwarded-Proto", "https")
	} else {
		pr.Out.Header.Set("X-Forwarded-Proto", "http")
	}
	pr.Out.Header.Set(HeaderTenant, ex.tenant.name)
	pr.Out.Header.Set(HeaderRequestID, ex.id())
}

func isClientSet(name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for _, h := range clientSet {
		if h == name {
			return true
		}
	}
	return false
}

// retryTransport sends a request to one of the route's instances and, when
// that is safe, to another one after a failure. It is the only place that
// picks instances.
type retryTransport struct {
	p    *Proxy
	base http.RoundTripper
	sync *syncTransport // the common requests (see upstream.go)
}

func (t *retryTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	ctx := out.Context()
	ex := exchangeFrom(ctx)
	var tried []*instance
	err := errNoInstance
	base := t.base
	if t.sync.handles(out) {
		base = t.sync
	}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if ctx.Err() != nil {
			return nil, ctx.Err() // reset or gone before an instance was picked: not forwarded
		}
		in := ex.route.pick(tried)
		if in == nil {
			break // every instance tried
		}
		tried = append(tried, in)
		req := out
		if attempt > 1 {
			req = out.Clone(ctx)
			if req.Body != nil {
				req.Body = ex.retryBody()
			}
		}
		req.URL.Host = in.addr
		ex.useInstance(in)

		var resp *http.Response
		resp, err = base.RoundTrip(req)
		if err == nil {
			in.markUp()
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err // the client went away: not the app's fault
		}
		if ex.body != nil && ex.body.malformed() {
			return nil, err // the client's body is broken: a 400, not the app's fault
		}
		why := classify(err)
		ex.tenant.metrics.errors[why].Inc()
		if why == reasonDial {
			in.markDown(time.Now())
		}
		retry := attempt < maxAttempts && ex.canRetry(why)
		t.p.log.LogAttrs(ctx, slog.LevelWarn, "upstream error",
			slog.String("tenant", ex.tenant.name),
			slog.String("instance", in.id),
			slog.String("addr", in.addr),
			slog.String("reason", why.String()),
			slog.Int("attempt", attempt),
			slog.Bool("retry", retry),
			slog.String("request_id", ex.id()),
			slog.Any("err", err),
		)
		if !retry {
			break
		}
	}
	return nil, err
}

// canRetry reports whether a failed attempt may be repeated on another
// instance: when no connection was made (any method), or for a safe method
// without a body. A body the app may have read is never sent again.
func (ex *exchange) canRetry(why reason) bool {
	if ex.body != nil && ex.body.consumed() {
		return false
	}
	switch why {
	case reasonDial:
		return true // nothing reached the app
	case reasonTimeout:
		return false // the app is slow, not gone; don't double the wait
	default:
		return safeMethod(ex.r.Method) && ex.r.ContentLength == 0
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// classify maps a transport error to an upstream error reason.
func classify(err error) reason {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return reasonDial
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return reasonTimeout
	}
	return reasonOther
}

// upstreamError answers a request whose forwarding failed (after retries).
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	switch {
	case ex.body != nil && ex.body.malformed():
		// Bad chunk encoding, a body that ended short of its
		// Content-Length: the client's error, counted as a 400 of the
		// tenant, never as an upstream error or the school's 5xx. (A
		// client that ended its half of the connection there has a
		// cancelled context too; it may still read the answer.)
		ex.w.Header().Set("Connection", "close")
		ex.sample = sampleMalformed
		p.reply(ex, pageBadBody, ex.route)
	case r.Context().Err() != nil:
		ex.status = StatusClientClosed // nobody to answer
	case ex.body != nil && ex.body.overLimit.Load():
		p.reply(ex, pageTooLarge, ex.route)
	case classify(err) == reasonTimeout:
		p.reply(ex, pageTimeout, ex.route)
	default:
		p.reply(ex, pageBadGateway, ex.route)
	}
}

// preReadLimit is how much of a request body the proxy reads before it
// picks an instance (see preRead).
const preReadLimit = 64 << 10

// preRead reads up to preReadLimit bytes of the request's body before any
// instance is picked, so that a body the client breaks there (bad chunk
// encoding, a body short of its Content-Length) is answered 400 by the
// proxy and never reaches the app: a flood of them costs the school
// nothing (issue 25). A body that ends within the limit (forms, nearly
// every request) is forwarded from memory with its length; a longer one
// is streamed on after what was read, and an error later in it still
// ends as a 400 (upstreamError). It reports whether to forward; when it
// does not, the answer is given (400) or recorded (499).
func (p *Proxy) preRead(ex *exchange) bool {
	if ex.body == nil {
		return true
	}
	buf := make([]byte, 0, min(max(ex.r.ContentLength, 512), preReadLimit+1))
	for len(buf) <= preReadLimit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := ex.body.rc.Read(buf[len(buf):min(cap(buf), preReadLimit+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			ex.body.rc = io.NopCloser(bytes.NewReader(buf))
			ex.r.ContentLength, ex.r.TransferEncoding = int64(len(buf)), nil
			return true
		}
		if err != nil {
			ex.body.note(err)
			switch {
			case ex.body.malformed():
				ex.w.Header().Set("Connection", "close")
				ex.sample = sampleMalformed
				p.reply(ex, pageBadBody, ex.route)
			case ex.body.overLimit.Load():
				p.reply(ex, pageTooLarge, ex.route)
			default:
				ex.status = StatusClientClosed
			}
			return false
		}
	}
	ex.body.rc = io.NopCloser(io.MultiReader(bytes.NewReader(buf), ex.body.rc))
	return true
}

// trackedBody wraps a request body so that a retry can tell whether the
// body was touched, and so that the transport closing it after a failed
// dial does not stop the next attempt from sending it. It also tells a
// body the client broke (bad chunk encoding, fewer bytes than its
// Content-Length) from a failure of the app.
type trackedBody struct {
	rc        io.ReadCloser
	read      atomic.Bool
	overLimit atomic.Bool // MaxRequestBody exceeded
	bad       atomic.Bool // reading the client's body failed
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	n, err := b.rc.Read(p)
	b.note(err)
	return n, err
}

// note records what a read error of the client's body says.
func (b *trackedBody) note(err error) {
	if err == nil || err == io.EOF {
		return
	}
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		b.overLimit.Store(true)
	case errors.As(err, &netErr):
		// The connection broke or timed out: the client is gone or too
		// slow, which the request's context tells.
	default:
		b.bad.Store(true) // the bytes were wrong or ended early
	}
}

// malformed reports whether the client's body was malformed: bad chunk
// encoding, or its end before its Content-Length.
func (b *trackedBody) malformed() bool { return b.bad.Load() }

// Close does nothing: the server closes the request body when the handler
// returns.
func (b *trackedBody) Close() error { return nil }

func (b *trackedBody) consumed() bool { return b.read.Load() }

// retryBody gives another attempt its own view of the request body.
// ReverseProxy hands the transport the body in a wrapper that stops reading
// once closed, and the transport closes it after a failed dial; the next
// attempt needs a fresh wrapper. finish closes these views as ReverseProxy
// closes its own, so nothing reads the body after the handler returns.
func (ex *exchange) retryBody() io.ReadCloser {
	v := &bodyView{b: ex.body}
	ex.views = append(ex.views, v)
	return v
}

type bodyView struct {
	b      *trackedBody
	closed atomic.Bool
}

var errBodyViewClosed = errors.New("proxy: read of a request body after its attempt ended")

func (v *bodyView) Read(p []byte) (int, error) {
	if v.closed.Load() {
		return 0, errBodyViewClosed
	}
	return v.b.Read(p)
}

func (v *bodyView) Close() error {
	v.closed.Store(true)
	return nil
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.pool.Put(&buf)
	}
}

// requestID keeps a client's request id when it is short and plain, so a
// request can be followed across systems, and makes one otherwise.
func requestID(client string) string {
	if client != "" && len(client) <= 128 && strings.IndexFunc(client, badIDRune) < 0 {
		return client
	}
	return rand.Text()
}

func badIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/+=", r))
}
