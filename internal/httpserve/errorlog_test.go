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

// Issue 25: a flood of failed TLS handshakes, or of HTTP/2 connections the
// server drops (a rapid reset gets ENHANCE_YOUR_CALM), is one line, then
// one line per period with the count; other server errors (an accept
// error, a panic) are all logged.
func TestErrorLogLimitsClientErrors(t *testing.T) {
	cases := []struct {
		name, line, first, summary, other string
	}{
		{"handshakes", "http: TLS handshake error from 192.0.2.%d:4000: tls: no certificates configured",
			"alert unrecognized_name", "TLS handshake errors", "http: Accept error: too many open files"},
		{"http2 calm", "http2: server connection error from 192.0.2.%d:4000: connection error: ENHANCE_YOUR_CALM",
			"ENHANCE_YOUR_CALM", "HTTP/2 client errors", "http2: panic serving 192.0.2.1:4000: boom"},
		{"http2 goaway", "http2: received GOAWAY [FrameHeader GOAWAY len=8] from %d, starting graceful shutdown",
			"received GOAWAY", "HTTP/2 client errors", "http: panic serving 192.0.2.1:4000: boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf lockedBuffer
			const every = 50 * time.Millisecond
			l := newErrorLog(slog.New(slog.NewJSONHandler(&buf, nil)), every)
			for i := range 1000 {
				l.Printf(tc.line, i%250)
			}
			l.Print(tc.other)
			deadline := time.Now().Add(10 * time.Second)
			for {
				lines := buf.lines()
				var total float64
				summaries, others := 0, 0
				for _, m := range lines[1:] {
					if m["msg"] == tc.other {
						others++
					}
					if c, ok := m["count"].(float64); ok {
						total += c
						summaries++
						if m["msg"] != tc.summary {
							t.Errorf("summary line %v, want msg %q", m, tc.summary)
						}
					}
				}
				if total == 999 {
					if got := lines[0]["msg"]; !strings.Contains(got.(string), tc.first) {
						t.Errorf("first line %q, want it to contain %q", got, tc.first)
					}
					if others != 1 {
						t.Errorf("the other error logged %d times, want once", others)
					}
					if len(lines) != 2+summaries || summaries > 2 {
						t.Errorf("%d lines for 1000 client errors and one other error:\n%v", len(lines), lines)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the count never reached 999 (%v): %d lines, first %v", total, len(lines), lines[:min(3, len(lines))])
				}
				time.Sleep(every / 5)
			}
		})
	}
}
