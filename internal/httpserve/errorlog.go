package httpserve

import (
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// HandshakeLogEvery is how often a server's error log reports TLS
// handshake errors during a flood of them (see errorLog).
const HandshakeLogEvery = 10 * time.Second

// errorLog is an http.Server's ErrorLog: each line at WARN, except TLS
// handshake errors. Those come one per connection that failed its
// handshake, which anyone can cause at will (random server names, scanners,
// plain HTTP on the TLS port): the first after a quiet period is logged,
// the next ones only counted, and one line at the end of every period
// says how many there were, so a flood costs a line per period. A
// handshake refused because no certificate names the server name (certs
// answers those with the unrecognized_name alert) is worded as such.
type errorLog struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	flood   bool // a period is running: handshake errors are counted
	count   int
	example string
}

func newErrorLog(logger *slog.Logger, every time.Duration) *log.Logger {
	return log.New(&errorLog{log: logger, every: every}, "", 0)
}

func (e *errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if !strings.HasPrefix(msg, "http: TLS handshake error") {
		e.log.Warn(msg)
		return len(p), nil
	}
	msg = strings.Replace(msg, "tls: no certificates configured", "no certificate for the server name (alert unrecognized_name)", 1)
	e.mu.Lock()
	if e.flood {
		e.count++
		e.example = msg
		e.mu.Unlock()
		return len(p), nil
	}
	e.flood = true
	e.mu.Unlock()
	time.AfterFunc(e.every, e.endPeriod)
	e.log.Warn(msg)
	return len(p), nil
}

// endPeriod reports the handshake errors counted in the period that
// ends, and keeps counting for another period if there were any.
func (e *errorLog) endPeriod() {
	e.mu.Lock()
	n, example := e.count, e.example
	e.count, e.example = 0, ""
	e.flood = n > 0
	e.mu.Unlock()
	if n == 0 {
		return
	}
	time.AfterFunc(e.every, e.endPeriod)
	e.log.Warn("TLS handshake errors", "count", n, "period", e.every.String(), "last", example)
}
