package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/internal/httpserve"
	"github.com/campus-saas/campus/registry"
)

// countingWriter records every Write it gets (a write system call, for a
// file or pipe).
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) state() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.buf.String()
}

// requestLines parses the JSON access log lines in s.
func requestLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line is not one JSON record: %v\n%q", err, sc.Text())
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// TestAccessLogNoWritePerRequest: requests through the proxy write their
// lines into the buffer, not to the log's file; Close writes them all, in
// one write, each line whole and naming its tenant.
func TestAccessLogNoWritePerRequest(t *testing.T) {
	out := &countingWriter{}
	acc := NewAccessLog(out, 1<<20, time.Hour)
	up := newUpstream(t, "nairobi", "n1")
	tp := newTestProxy(t, Config{AccessLog: slog.New(slog.NewJSONHandler(acc, nil))})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	const n = 200
	for i := range n {
		if r := tp.do(t, request{host: "nairobi.school.localhost", path: fmt.Sprintf("/students/%d", i)}); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	if writes, _ := out.state(); writes != 0 {
		t.Fatalf("%d writes to the log for %d requests before any flush; want none", writes, n)
	}
	if err := acc.Close(); err != nil {
		t.Fatal(err)
	}
	writes, text := out.state()
	lines := requestLines(t, text)
	if writes != 1 || len(lines) != n {
		t.Fatalf("after Close: %d writes, %d request lines; want 1 write of %d lines", writes, len(lines), n)
	}
	for i, l := range lines {
		if l["tenant"] != "nairobi" || l["path"] != fmt.Sprintf("/students/%d", i) || l["status"] != float64(200) {
			t.Fatalf("line %d = %v", i, l)
		}
	}
}

// TestAccessLogFlushedOnShutdown: requests still running when the server
// is told to stop are drained, and every one of them is in the log once
// the access log is closed after the server (as campus proxy does).
func TestAccessLogFlushedOnShutdown(t *testing.T) {
	out := &countingWriter{}
	acc := NewAccessLog(out, 0, time.Hour)
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	up := newUpstreamFunc(t, "accra", "a1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		arrived <- struct{}{}
		<-release
		w.Write([]byte("ok"))
	})
	p, err := New(Config{Logger: slog.New(slog.DiscardHandler), AccessLog: slog.New(slog.NewJSONHandler(acc, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(t, "accra", "Accra Academy", "accra.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, httpserve.New(p, slog.New(slog.DiscardHandler)), ln) }()

	const n = 20
	statuses := make(chan int, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
			req.Host = "accra.school.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for range n {
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("requests did not reach the app")
		}
	}
	stop() // shutdown begins with n requests in flight
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not drain")
	}
	for range n {
		if s := <-statuses; s != 200 {
			t.Errorf("a drained request got %d", s)
		}
	}
	if err := acc.Close(); err != nil {
		t.Fatal(err)
	}
	_, text := out.state()
	if lines := requestLines(t, text); len(lines) != n {
		t.Fatalf("%d request lines after shutdown, want %d:\n%s", len(lines), n, text)
	}
}

// TestAccessLogWrites: records stay whole when the buffer fills, a
// record larger than the buffer goes straight through after what was
// buffered, the timer flushes, and writes after Close are not held back.
func TestAccessLogWrites(t *testing.T) {
	out := &countingWriter{}
	acc := NewAccessLog(out, 10, time.Hour)
	for _, rec := range []string{"aaaa\n", "bbbb\n", "cccc\n", "a record longer than the buffer\n"} {
		if n, err := acc.Write([]byte(rec)); err != nil || n != len(rec) {
			t.Fatalf("Write(%q) = %d, %v", rec, n, err)
		}
	}
	writes, text := out.state()
	if writes != 3 || text != "aaaa\nbbbb\ncccc\na record longer than the buffer\n" {
		t.Fatalf("%d writes of %q; want 3: the full buffer, the next record, the long one", writes, text)
	}
	acc.Close()
	acc.Write([]byte("after close\n"))
	if _, text := out.state(); !strings.HasSuffix(text, "after close\n") {
		t.Fatalf("a write after Close was held back: %q", text)
	}

	timed := &countingWriter{}
	acc = NewAccessLog(timed, 0, 10*time.Millisecond)
	defer acc.Close()
	acc.Write([]byte("soon\n"))
	eventually(t, "the periodic flush", func() bool { _, s := timed.state(); return s == "soon\n" })
}
