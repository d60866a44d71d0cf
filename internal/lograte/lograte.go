// Package lograte keeps log lines about events anyone can cause at will
// (refused TLS handshakes, cancelled or malformed requests) from becoming
// a flood: the first event after a quiet period is logged at once, the
// next ones are only counted, and one line at the end of every period
// says how many there were. A flood costs one line per period.
package lograte

import (
	"sync"
	"time"
)

// Limiter decides which events of one kind get their own log line.
type Limiter struct {
	every  time.Duration
	report func(count int, last string)

	mu    sync.Mutex
	flood bool // a period is running: events are counted
	count int
	last  string
}

// New returns a Limiter whose periods last every; report is called (on
// a timer goroutine) at the end of each period in which events were
// counted, with their number and the note of the last one.
func New(every time.Duration, report func(count int, last string)) *Limiter {
	return &Limiter{every: every, report: report}
}

// Allow reports whether this event should be logged now. When it returns
// false the event was counted, and note will be reported if it is the
// period's last.
func (l *Limiter) Allow(note string) bool {
	l.mu.Lock()
	if l.flood {
		l.count++
		l.last = note
		l.mu.Unlock()
		return false
	}
	l.flood = true
	l.mu.Unlock()
	time.AfterFunc(l.every, l.endPeriod)
	return true
}

// endPeriod reports the events counted in the period that ends, and keeps
// counting for another period if there were any.
func (l *Limiter) endPeriod() {
	l.mu.Lock()
	n, last := l.count, l.last
	l.count, l.last = 0, ""
	l.flood = n > 0
	l.mu.Unlock()
	if n == 0 {
		return
	}
	time.AfterFunc(l.every, l.endPeriod)
	l.report(n, last)
}
