package consultest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
)

const (
	statusPassing  = "passing"
	statusWarning  = "warning"
	statusCritical = "critical"

	defaultCheckTimeout = 10 * time.Second
)

type service struct {
	ID                string
	Name              string
	Tags              []string
	Address           string
	Port              int
	Meta              map[string]string
	EnableTagOverride bool
	CreateIndex       uint64
	ModifyIndex       uint64

	checks []*check
	cancel context.CancelFunc // stops the check runners
}

func (svc *service) stopChecks() {
	if svc.cancel != nil {
		svc.cancel()
	}
}

type check struct {
	ID              string
	Name            string
	HTTP            string
	Method          string
	Header          map[string][]string
	Interval        time.Duration
	Timeout         time.Duration
	DeregisterAfter time.Duration
	Notes           string
	Status          string
	Output          string
	CreateIndex     uint64
	ModifyIndex     uint64

	criticalSince time.Time
}

// duration decodes Consul's durations: a Go duration string ("10s") or a
// number of nanoseconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("bad duration %s", b)
	}
	*d = duration(n)
	return nil
}

// serviceDef is the documented body of PUT /v1/agent/service/register.
type serviceDef struct {
	ID                string
	Name              string
	Kind              string
	Tags              []string
	Address           string
	Port              int
	Meta              map[string]string
	EnableTagOverride bool
	Check             *checkDef
	Checks            []*checkDef
}

// checkDef is one check of a service definition.
type checkDef struct {
	CheckID                        string
	Name                           string
	Notes                          string
	Status                         string
	HTTP                           string
	Method                         string
	Header                         map[string][]string
	Interval                       duration
	Timeout                        duration
	DeregisterCriticalServiceAfter duration

	TTL        duration
	TCP        string
	UDP        string
	GRPC       string
	H2PING     string
	ScriptArgs []string
	Args       []string
	AliasNode  string
}

func (c *checkDef) validate() error {
	if c.TTL != 0 || c.TCP != "" || c.UDP != "" || c.GRPC != "" || c.H2PING != "" || len(c.ScriptArgs) > 0 || len(c.Args) > 0 || c.AliasNode != "" {
		return fmt.Errorf("consultest: only HTTP checks are implemented")
	}
	if c.HTTP == "" {
		return fmt.Errorf("Invalid check: must specify an HTTP URL")
	}
	if c.Interval <= 0 {
		return fmt.Errorf("Interval must be > 0 for Script, HTTP, or TCP checks")
	}
	switch c.Status {
	case "", statusPassing, statusWarning, statusCritical:
	default:
		return fmt.Errorf("Status for checks must 'passing', 'warning', 'critical'")
	}
	return nil
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var def serviceDef
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&def); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	if def.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if def.Kind != "" {
		http.Error(w, "consultest: service kinds are not implemented", http.StatusBadRequest)
		return
	}
	if def.ID == "" {
		def.ID = def.Name
	}
	defs := def.Checks
	if def.Check != nil {
		defs = append([]*checkDef{def.Check}, defs...)
	}
	for _, c := range defs {
		if err := c.validate(); err != nil {
			http.Error(w, "Invalid check: "+err.Error(), http.StatusBadRequest)
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.nextIndexLocked()
	svc := &service{
		ID: def.ID, Name: def.Name, Tags: slices.Clone(def.Tags), Address: def.Address, Port: def.Port,
		Meta: cloneMap(def.Meta), EnableTagOverride: def.EnableTagOverride, CreateIndex: idx, ModifyIndex: idx,
	}
	old := s.services[def.ID]
	if old != nil {
		svc.CreateIndex = old.CreateIndex
		old.stopChecks()
		if old.Name != svc.Name {
			s.svcIndex[old.Name] = idx
		}
	}
	now := time.Now()
	for i, d := range defs {
		c := &check{
			ID: d.CheckID, Name: d.Name, HTTP: d.HTTP, Method: d.Method, Header: d.Header, Notes: d.Notes,
			Interval: time.Duration(d.Interval), Timeout: time.Duration(d.Timeout),
			DeregisterAfter: time.Duration(d.DeregisterCriticalServiceAfter),
			Status:          statusCritical, CreateIndex: idx, ModifyIndex: idx, criticalSince: now,
		}
		if c.ID == "" {
			c.ID = "service:" + def.ID
			if len(defs) > 1 {
				c.ID += ":" + strconv.Itoa(i+1)
			}
		}
		if c.Name == "" {
			c.Name = "Service '" + def.Name + "' check"
		}
		if c.Timeout <= 0 {
			c.Timeout = defaultCheckTimeout
		}
		if d.Status != "" {
			c.Status = d.Status
		}
		// Re-registering keeps the state of a check that already existed,
		// as Consul's agent does.
		if old != nil {
			for _, oc := range old.checks {
				if oc.ID == c.ID {
					c.Status, c.Output, c.criticalSince, c.CreateIndex = oc.Status, oc.Output, oc.criticalSince, oc.CreateIndex
				}
			}
		}
		svc.checks = append(svc.checks, c)
	}
	s.services[def.ID] = svc
	s.svcIndex[svc.Name] = idx
	s.svcTable = idx
	ctx, cancel := context.WithCancel(context.Background())
	svc.cancel = cancel
	for _, c := range svc.checks {
		go s.runCheck(ctx, svc, c)
	}
	s.notifyLocked()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[id]
	if svc == nil {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
		return
	}
	s.removeServiceLocked(svc)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) removeServiceLocked(svc *service) {
	svc.stopChecks()
	delete(s.services, svc.ID)
	idx := s.nextIndexLocked()
	s.svcIndex[svc.Name] = idx
	s.svcTable = idx
	s.notifyLocked()
}

// runCheck is the agent's check runner: a random stagger within the
// interval, then one HTTP request per interval.
func (s *Server) runCheck(ctx context.Context, svc *service, c *check) {
	if !sleepCtx(ctx, rand.N(c.Interval)) {
		return
	}
	for {
		if s.Running() { // a stopped agent runs no checks
			status, output := s.probe(ctx, c)
			if ctx.Err() != nil {
				return
			}
			if s.recordCheck(svc, c, status, output) {
				return // the service was reaped
			}
		}
		if !sleepCtx(ctx, c.Interval) {
			return
		}
	}
}

func (s *Server) probe(ctx context.Context, c *check) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, c.HTTP, nil)
	if err != nil {
		return statusCritical, err.Error()
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("User-Agent", "Consul Health Check")
	req.Header.Set("Accept", "text/plain, text/*, */*")
	resp, err := s.checkClient.Do(req)
	if err != nil {
		return statusCritical, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	output := fmt.Sprintf("HTTP %s %s: %s Output: %s", method, c.HTTP, resp.Status, body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return statusPassing, output
	case resp.StatusCode == http.StatusTooManyRequests:
		return statusWarning, output
	default:
		return statusCritical, output
	}
}

// recordCheck stores a check result and reaps the service when it has been
// critical for too long. It reports whether the service was removed.
func (s *Server) recordCheck(svc *service, c *check, status, output string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.services[svc.ID] != svc {
		return true // deregistered or replaced meanwhile
	}
	c.Output = output
	if c.Status != status {
		if status == statusCritical {
			c.criticalSince = time.Now()
		}
		idx := s.nextIndexLocked()
		c.Status, c.ModifyIndex = status, idx
		s.svcIndex[svc.Name] = idx
		s.svcTable = idx
		s.notifyLocked()
	}
	if c.Status == statusCritical && c.DeregisterAfter > 0 && time.Since(c.criticalSince) > c.DeregisterAfter {
		s.removeServiceLocked(svc)
		return true
	}
	return false
}

// agentServiceJSON is the documented shape of /v1/agent/services entries.
type agentServiceJSON struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	ContentHash       string `json:",omitempty"`
	Datacenter        string
}

type weights struct{ Passing, Warning int }

func (svc *service) json() agentServiceJSON {
	tags := svc.Tags
	if tags == nil {
		tags = []string{}
	}
	meta := svc.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return agentServiceJSON{
		ID: svc.ID, Service: svc.Name, Tags: slices.Clone(tags), Meta: cloneMap(meta), Port: svc.Port,
		Address: svc.Address, Weights: weights{Passing: 1, Warning: 1}, EnableTagOverride: svc.EnableTagOverride,
		Datacenter: "dc1",
	}
}

func (s *Server) handleAgentServices(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("filter") {
		http.Error(w, "consultest: ?filter is not implemented", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	out := make(map[string]agentServiceJSON, len(s.services))
	for id, svc := range s.services {
		out[id] = svc.json()
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAgentService(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("hash") {
		http.Error(w, "consultest: hash-based blocking is not implemented", http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	svc := s.services[id]
	var out agentServiceJSON
	if svc != nil {
		out = svc.json()
	}
	s.mu.Unlock()
	if svc == nil {
		http.Error(w, "unknown service ID: "+id, http.StatusNotFound)
		return
	}
	b, _ := json.Marshal(out)
	sum := sha256.Sum256(b)
	out.ContentHash = hex.EncodeToString(sum[:8])
	w.Header().Set("X-Consul-Contenthash", out.ContentHash)
	writeJSON(w, http.StatusOK, out)
}

// Health endpoint shapes, as documented for /v1/health/service/<name>.
type nodeJSON struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type healthCheckJSON struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  map[string]any
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntryJSON struct {
	Node    nodeJSON
	Service agentServiceJSON
	Checks  []healthCheckJSON
}

var theNode = nodeJSON{
	ID: "8b1a5c4e-0f0d-4c36-9a54-6b1f3c0e7a11", Node: NodeName, Address: "127.0.0.1", Datacenter: "dc1",
	TaggedAddresses: map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"},
	Meta:            map[string]string{}, CreateIndex: 1, ModifyIndex: 1,
}

var serfHealth = healthCheckJSON{
	Node: NodeName, CheckID: "serfHealth", Name: "Serf Health Status", Status: statusPassing,
	Output: "Agent alive and reachable", ServiceTags: []string{}, Definition: map[string]any{},
	CreateIndex: 1, ModifyIndex: 1,
}

func (s *Server) handleHealthService(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("filter") || q.Has("peer") {
		http.Error(w, "consultest: ?filter and ?peer are not implemented", http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	passingOnly := q.Has("passing") && q.Get("passing") != "false"
	tags := q["tag"]
	s.blocking(w, r, func() (uint64, int, any) {
		idx, ok := s.svcIndex[name]
		if !ok {
			idx = s.svcTable
		}
		out := []serviceEntryJSON{}
		for _, svc := range s.services {
			if svc.Name != name || !hasTags(svc.Tags, tags) {
				continue
			}
			e := serviceEntryJSON{Node: theNode, Service: svc.json(), Checks: []healthCheckJSON{serfHealth}}
			e.Service.CreateIndex, e.Service.ModifyIndex = svc.CreateIndex, svc.ModifyIndex
			passing := true
			for _, c := range svc.checks {
				passing = passing && c.Status == statusPassing
				e.Checks = append(e.Checks, healthCheckJSON{
					Node: NodeName, CheckID: c.ID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
					ServiceID: svc.ID, ServiceName: svc.Name, ServiceTags: slices.Clone(e.Service.Tags), Type: "http",
					Definition:  map[string]any{"HTTP": c.HTTP, "Interval": c.Interval.String(), "Timeout": c.Timeout.String()},
					CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex,
				})
			}
			if passingOnly && !passing {
				continue
			}
			out = append(out, e)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Service.ID < out[j].Service.ID })
		return idx, http.StatusOK, out
	})
}

func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
