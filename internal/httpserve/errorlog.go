package httpserve

import (
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/campus-saas/campus/internal/lograte"
)

// HandshakeLogEvery is how often a server's error log reports TLS
// handshake errors (and HTTP/2 connection errors) during a flood of them
// (see errorLog).
const HandshakeLogEvery = 10 * time.Second

// errorLog is an http.Server's ErrorLog: each line at WARN, except those
// any client can cause at will, one per connection or request: TLS
// handshake errors (random server names, scanners, plain HTTP on the TLS
// port) and the HTTP/2 server's complaints about a client (a connection
// it drops for a protocol error or for ENHANCE_YOUR_CALM, a client's
// GOAWAY, a bad preface, invalid trailers). Each kind goes through a
// lograte.Limiter: the first after a quiet period is logged, then one
// line per period with their count and the last one. A handshake refused
// because no certificate names the server name (certs answers those with
// the unrecognized_name alert) is worded as such. Panics are always
// logged.
type errorLog struct {
	log   *slog.Logger
	kinds []errorKind
}

// errorKind is a kind of client-caused error line.
type errorKind struct {
	summary  string   // message of the period's line
	prefixes []string // lines of the kind start with one of these
	limit    *lograte.Limiter
}

var clientErrorKinds = []struct {
	summary  string
	prefixes []string
}{
	{"TLS handshake errors", []string{"http: TLS handshake error"}},
	{"HTTP/2 client errors", []string{
		"http2: server connection error", "http2: server closing client connection",
		"http2: server: error reading preface", "http2: received GOAWAY",
		"timeout waiting for SETTINGS frames", "timeout waiting for PING response",
		"ignoring invalid trailer",
	}},
}

func newErrorLog(logger *slog.Logger, every time.Duration) *log.Logger {
	e := &errorLog{log: logger}
	for _, k := range clientErrorKinds {
		e.kinds = append(e.kinds, errorKind{summary: k.summary, prefixes: k.prefixes,
			limit: lograte.New(every, func(n int, last string) {
				logger.Warn(k.summary, "count", n, "period", every.String(), "last", last)
			})})
	}
	return log.New(e, "", 0)
}

func (e *errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	msg = strings.Replace(msg, "tls: no certificates configured", "no certificate for the server name (alert unrecognized_name)", 1)
	for _, k := range e.kinds {
		if k.matches(msg) {
			if !k.limit.Allow(msg) {
				return len(p), nil
			}
			break
		}
	}
	e.log.Warn(msg)
	return len(p), nil
}

func (k *errorKind) matches(msg string) bool {
	for _, pre := range k.prefixes {
		if strings.HasPrefix(msg, pre) {
			return true
		}
	}
	return false
}
