// Package consultest is an in-process stand-in for a single Consul agent
// (client and server in one), for tests only. It implements just the HTTP
// API endpoints and semantics the campus Consul backend uses, following
// Consul's HTTP API documentation:
//
//   - blocking queries: X-Consul-Index, ?index=&wait= (wait defaults to 5m,
//     is capped at 10m and gets up to wait/16 of jitter); a restore wakes
//     every blocked query, as a raft snapshot restore does;
//   - KV: GET /v1/kv/<key> (single or ?recurse), PUT with ?cas=, DELETE with
//     ?cas= or ?recurse; one raft-like index for every write, with
//     CreateIndex/ModifyIndex per entry and tombstones so that a prefix's
//     index does not go backwards when a key is deleted;
//   - PUT /v1/txn with the KV verbs set, cas, get, check-index,
//     check-not-exists, delete and delete-cas: all or nothing, 409 with
//     Errors on failure;
//   - agent services: register, deregister, /v1/agent/services,
//     /v1/agent/service/<id>; the agent runs HTTP checks itself (2xx passing,
//     429 warning, anything else critical, critical until the first check)
//     and removes services critical for longer than
//     DeregisterCriticalServiceAfter;
//   - GET /v1/health/service/<name> with ?passing and blocking.
//
// Test hooks simulate failures: Stop/Start (Consul unreachable, then back
// on the same address), Hang (requests accepted, never answered),
// ForgetServices (an agent restart that lost its
// services) and Checkpoint/Restore (a raft snapshot restore, which makes
// indexes go backwards).
//
// Nothing in campus outside tests may import this package.
package consultest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NodeName is the name of the single node the fake agent runs on.
const NodeName = "consultest"

const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
	maxTxnOps   = 128
	maxValue    = 512 * 1024
)

// Server is a fake Consul agent listening on 127.0.0.1.
type Server struct {
	t    testing.TB
	addr string

	httpMu  sync.Mutex // guards srv and running
	srv     *http.Server
	running bool

	checkClient *http.Client

	mu         sync.Mutex
	index      uint64 // last raft index handed out
	kv         map[string]*kvEntry
	tombstones map[string]uint64
	kvTable    uint64              // index of the last KV write or delete
	services   map[string]*service // agent (and catalog) services by ID
	svcIndex   map[string]uint64   // per service name: index of its last change
	svcTable   uint64              // index of the last change to any service
	changed    chan struct{}       // closed and replaced on every change
	generation uint64              // bumped by Restore: blocked queries bail out
	closed     bool

	hang     atomic.Bool
	requests sync.Map // path → *counter, for tests that count calls
}

type kvEntry struct {
	Key         string
	Value       []byte
	Flags       uint64
	CreateIndex uint64
	ModifyIndex uint64
	LockIndex   uint64
}

// NewServer starts a fake Consul agent on 127.0.0.1:0 and stops it when the
// test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:           t,
		kv:          map[string]*kvEntry{},
		tombstones:  map[string]uint64{},
		services:    map[string]*service{},
		svcIndex:    map[string]uint64{},
		changed:     make(chan struct{}),
		index:       1,
		checkClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("consultest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.close)
	return s
}

// Addr is the host:port the server listens on (CONSUL_HTTP_ADDR form).
func (s *Server) Addr() string { return s.addr }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Index is the current raft index.
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// Requests counts the requests served for a path such as "/v1/txn" (query
// strings not included).
func (s *Server) Requests(path string) int {
	if v, ok := s.requests.Load(path); ok {
		return int(v.(*counter).n.Load())
	}
	return 0
}

// Stop makes Consul unreachable: the listener closes (new connections are
// refused) and open connections, blocked queries included, are cut. The
// agent's checks pause. State is kept, as a restarted agent with its data
// directory keeps it.
func (s *Server) Stop() {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	_ = s.srv.Close()
}

// Start brings a stopped server back on the same address.
func (s *Server) Start() {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.running {
		return
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after Close
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Errorf("consultest: listen again on %s: %v", s.addr, err)
		return
	}
	s.serveLocked(ln)
}

// Hang makes the server accept requests but never answer them (queries
// already blocked included) while on, like a half-open connection or a
// wedged agent: only the client giving up ends such a request.
func (s *Server) Hang(on bool) {
	s.hang.Store(on)
	s.mu.Lock()
	s.notifyLocked() // blocked queries re-check and start hanging
	s.mu.Unlock()
}

// hangIfAsked holds r until its client gives up, when Hang is on.
func (s *Server) hangIfAsked(r *http.Request) bool {
	if !s.hang.Load() {
		return false
	}
	<-r.Context().Done()
	return true
}

// Running reports whether the server accepts connections.
func (s *Server) Running() bool {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	return s.running
}

func (s *Server) serve(ln net.Listener) {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	s.serveLocked(ln)
}

func (s *Server) serveLocked(ln net.Listener) {
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	s.running = true
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Logf("consultest: serve: %v", err)
		}
	}()
}

func (s *Server) close() {
	s.Stop()
	s.mu.Lock()
	s.closed = true
	for _, svc := range s.services {
		svc.stopChecks()
	}
	s.services = map[string]*service{}
	s.notifyLocked()
	s.mu.Unlock()
	s.checkClient.CloseIdleConnections()
}

// ForgetServices simulates an agent restart without its service
// definitions: every service and its checks disappear from the agent and
// the catalog.
func (s *Server) ForgetServices() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.services) == 0 {
		return
	}
	idx := s.nextIndexLocked()
	for id, svc := range s.services {
		svc.stopChecks()
		delete(s.services, id)
		s.svcIndex[svc.Name] = idx
	}
	s.svcTable = idx
	s.notifyLocked()
}

// Checkpoint is a copy of the server's state at one index, for Restore.
type Checkpoint struct {
	index      uint64
	kvTable    uint64
	kv         map[string]*kvEntry
	tombstones map[string]uint64
}

// Checkpoint captures the KV store and the index, like a raft snapshot.
func (s *Server) Checkpoint() *Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Checkpoint{index: s.index, kvTable: s.kvTable, kv: map[string]*kvEntry{}, tombstones: map[string]uint64{}}
	for k, e := range s.kv {
		cp := *e
		c.kv[k] = &cp
	}
	for k, i := range s.tombstones {
		c.tombstones[k] = i
	}
	return c
}

// Restore puts the KV store and the index back to a checkpoint, as
// restoring an older raft snapshot does: indexes go backwards. Every
// blocked query returns at once with the restored (lower) index. Service
// indexes above the checkpoint are lowered to it.
func (s *Server) Restore(c *Checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = c.index
	s.kvTable = c.kvTable
	s.kv = map[string]*kvEntry{}
	for k, e := range c.kv {
		cp := *e
		s.kv[k] = &cp
	}
	s.tombstones = map[string]uint64{}
	for k, i := range c.tombstones {
		s.tombstones[k] = i
	}
	for name, i := range s.svcIndex {
		s.svcIndex[name] = min(i, c.index)
	}
	s.svcTable = min(s.svcTable, c.index)
	for _, svc := range s.services {
		svc.CreateIndex = min(svc.CreateIndex, c.index)
		svc.ModifyIndex = min(svc.ModifyIndex, c.index)
		for _, ch := range svc.checks {
			ch.CreateIndex = min(ch.CreateIndex, c.index)
			ch.ModifyIndex = min(ch.ModifyIndex, c.index)
		}
	}
	s.generation++
	s.notifyLocked()
}

func (s *Server) nextIndexLocked() uint64 {
	s.index++
	return s.index
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

type counter struct{ n atomic.Int64 }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/kv/", s.handleKV)
	mux.HandleFunc("PUT /v1/txn", s.handleTxn)
	mux.HandleFunc("PUT /v1/agent/service/register", s.handleRegister)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", s.handleDeregister)
	mux.HandleFunc("GET /v1/agent/services", s.handleAgentServices)
	mux.HandleFunc("GET /v1/agent/service/{id}", s.handleAgentService)
	mux.HandleFunc("GET /v1/health/service/{name}", s.handleHealthService)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := s.requests.LoadOrStore(r.URL.Path, &counter{})
		v.(*counter).n.Add(1)
		if s.hangIfAsked(r) {
			return
		}
		h := w.Header()
		h.Set("X-Consul-Default-Acl-Policy", "allow")
		h.Set("X-Consul-Effective-Consistency", "leader")
		mux.ServeHTTP(w, r)
	})
}

// blocking runs a blocking query: query is evaluated under s.mu and returns
// the resource's index and the response to send. With ?index=N (N > 0) the
// request waits until the index moves past N, the wait elapses or a restore
// happens.
func (s *Server) blocking(w http.ResponseWriter, r *http.Request, query func() (uint64, int, any)) {
	q := r.URL.Query()
	var minIndex uint64
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Invalid index: "+err.Error(), http.StatusBadRequest)
			return
		}
		minIndex = n
	}
	wait := defaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = d
	}
	wait = min(wait, maxWait)
	wait += rand.N(wait/16 + 1)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()

	s.mu.Lock()
	gen := s.generation
	s.mu.Unlock()
	for {
		if s.hangIfAsked(r) {
			return
		}
		s.mu.Lock()
		idx, status, body := query()
		ch, restored := s.changed, s.generation != gen
		s.mu.Unlock()
		if minIndex == 0 || idx > minIndex || restored {
			writeQuery(w, idx, status, body)
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			if s.hangIfAsked(r) {
				return
			}
			s.mu.Lock()
			idx, status, body = query()
			s.mu.Unlock()
			writeQuery(w, idx, status, body)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeQuery writes a read response with the headers Consul sends.
func writeQuery(w http.ResponseWriter, idx uint64, status int, body any) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(max(idx, 1), 10))
	h.Set("X-Consul-Knownleader", "true")
	h.Set("X-Consul-Lastcontact", "0")
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// sleepCtx sleeps for d and reports whether ctx was still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
