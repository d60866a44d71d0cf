package supervisor

import (
	"bytes"
	"io"
	"sync"
)

// maxLine is the longest partial line a lineWriter buffers; longer lines
// are written in pieces.
const maxLine = 64 << 10

// syncWriter serialises whole lines from all children onto one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) writeLine(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(p) // nowhere to report a failing log output
}

// lineWriter is one child's stdout or stderr: it passes on complete lines
// only. exec.Cmd calls Write from a single goroutine.
type lineWriter struct {
	out *syncWriter
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(l.buf[start:], '\n')
		if i < 0 {
			break
		}
		l.out.writeLine(l.buf[start : start+i+1])
		start += i + 1
	}
	n := copy(l.buf, l.buf[start:])
	l.buf = l.buf[:n]
	if len(l.buf) >= maxLine {
		l.flush()
	}
	return len(p), nil
}

// flush writes a final partial line, ended with a newline.
func (l *lineWriter) flush() {
	if len(l.buf) == 0 {
		return
	}
	l.out.writeLine(append(l.buf, '\n'))
	l.buf = l.buf[:0]
}
