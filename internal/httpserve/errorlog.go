package httpserve

import (
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/campus-saas/campus/internal/lograte"
)

// HandshakeLogEvery is how often a server's error log reports TLS
// handshake errors during a flood of them (see errorLog).
const HandshakeLogEvery = 10 * time.Second

// errorLog is an http.Server's ErrorLog: each line at WARN, except TLS
// handshake errors. Those come one per connection that failed its
// handshake, which anyone can cause at will (random server names, scanners,
// plain HTTP on the TLS port), so they go through a lograte.Limiter: the
// first after a quiet period is logged, then one line per period with
// their count. A handshake refused because no certificate names the server
// name (certs answers those with the unrecognized_name alert) is worded as
// such.
type errorLog struct {
	log       *slog.Logger
	handshake *lograte.Limiter
}

func newErrorLog(logger *slog.Logger, every time.Duration) *log.Logger {
	e := &errorLog{log: logger}
	e.handshake = lograte.New(every, func(n int, last string) {
		logger.Warn("TLS handshake errors", "count", n, "period", every.String(), "last", last)
	})
	return log.New(e, "", 0)
}

func (e *errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		msg = strings.Replace(msg, "tls: no certificates configured", "no certificate for the server name (alert unrecognized_name)", 1)
		if !e.handshake.Allow(msg) {
			return len(p), nil
		}
	}
	e.log.Warn(msg)
	return len(p), nil
}
