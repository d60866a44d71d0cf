package proxy

import (
	"io"
	"sync"
	"time"
)

// Defaults of NewAccessLog.
const (
	DefaultAccessLogBuffer = 64 << 10
	DefaultAccessLogFlush  = time.Second
)

// AccessLog is the buffered writer under the proxy's access logger
// (Config.AccessLog): a request's log line is copied into a buffer, not
// written to the file or pipe, and the buffer goes out in one write when
// it is full, every flush period, and on Close. So the request path costs
// no write system call, and a line reaches the log at most a flush period
// late.
//
// Each Write is kept whole (slog handlers write one record per call): a
// record that does not fit in what is left of the buffer flushes the
// buffer first, so lines of other writers of the same file (the
// unbuffered warnings and errors on stderr) never land inside one.
// Close flushes what is left; Writes after Close go straight through, so
// nothing is lost during or after shutdown.
type AccessLog struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	err    error // first failed write since the last Flush
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// NewAccessLog buffers up to size bytes (default 64 KiB) for w and flushes
// every flush period (default one second).
func NewAccessLog(w io.Writer, size int, flush time.Duration) *AccessLog {
	if size <= 0 {
		size = DefaultAccessLogBuffer
	}
	if flush <= 0 {
		flush = DefaultAccessLogFlush
	}
	a := &AccessLog{w: w, buf: make([]byte, 0, size), stop: make(chan struct{}), done: make(chan struct{})}
	go a.flushEvery(flush)
	return a
}

func (a *AccessLog) flushEvery(d time.Duration) {
	defer close(a.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = a.Flush()
		case <-a.stop:
			return
		}
	}
}

// Write buffers one record.
func (a *AccessLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || len(p) > cap(a.buf) {
		if err := a.flushLocked(); err != nil {
			return 0, err
		}
		return a.w.Write(p)
	}
	if len(a.buf)+len(p) > cap(a.buf) {
		if err := a.flushLocked(); err != nil {
			a.buf = a.buf[:0] // a broken log must not grow without bound
		}
	}
	a.buf = append(a.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered.
func (a *AccessLog) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.flushLocked()
	if err == nil {
		err, a.err = a.err, nil
	}
	return err
}

func (a *AccessLog) flushLocked() error {
	if len(a.buf) == 0 {
		return nil
	}
	_, err := a.w.Write(a.buf)
	a.buf = a.buf[:0]
	if err != nil && a.err == nil {
		a.err = err
	}
	return err
}

// Close stops the periodic flush and flushes what is left. Later Writes
// are not buffered.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	return a.Flush()
}
