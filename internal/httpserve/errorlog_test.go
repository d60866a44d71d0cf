package httpserve

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Issue 25 point 4: a flood of failed TLS handshakes is one line, then one
// line per period with the count; other server errors are all logged.
func TestErrorLogLimitsHandshakeErrors(t *testing.T) {
	var buf lockedBuffer
	const every = 50 * time.Millisecond
	l := newErrorLog(slog.New(slog.NewJSONHandler(&buf, nil)), every)
	for i := range 1000 {
		l.Printf("http: TLS handshake error from 192.0.2.%d:4000: tls: no certificates configured", i%250)
	}
	l.Printf("http: Accept error: too many open files")
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := buf.lines()
		var total float64
		summaries := 0
		for _, m := range lines[1:] {
			if c, ok := m["count"].(float64); ok {
				total += c
				summaries++
			}
		}
		if total == 999 {
			if got := lines[0]["msg"]; !strings.Contains(got.(string), "alert unrecognized_name") {
				t.Errorf("first line %q", got)
			}
			if len(lines) != 2+summaries || summaries > 2 {
				t.Errorf("%d lines for 1000 handshake errors and one other error:\n%v", len(lines), lines)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the count never reached 999: %v", lines)
		}
		time.Sleep(every / 5)
	}
}
