package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campus-saas/campus/registry"
)

// school is one tenant of the isolation tests, with its data marker.
type school struct {
	name, display string
	hosts         []string
	state         registry.State
	instances     int
}

func (s school) secret() string { return s.name + "-private-records" }

var floodSchools = []school{
	{"default", "Default School", []string{"school.localhost"}, registry.StateActive, 2},
	{"nairobi", "Nairobi High", []string{"nairobi.school.localhost", "records.nairobi-high.example"}, registry.StateActive, 2},
	{"accra", "Accra Academy", []string{"accra.school.localhost", "accra.example"}, registry.StateActive, 2},
	{"kigali", "Kigali Prep", []string{"kigali.school.localhost"}, registry.StateActive, 1},
	{"lagos", "Lagos Grammar", []string{"lagos.school.localhost"}, registry.StateSuspended, 1},
	{"mombasa", "Mombasa Day", []string{"mombasa.school.localhost"}, registry.StateActive, 0},
}

// startSchools starts the upstreams of schools (each answers with its
// tenant name and secret only) and returns the snapshot describing them.
func startSchools(t testing.TB, schools []school) registry.Snapshot {
	snap := registry.Snapshot{Version: 1}
	for _, s := range schools {
		tn := tenant(t, s.name, s.display, s.hosts...)
		tn.State = s.state
		snap.Tenants = append(snap.Tenants, tn)
		for i := range s.instances {
			u := newUpstreamFunc(t, s.name, fmt.Sprintf("%s-%d", s.name, i), func(w http.ResponseWriter, r *http.Request, _ []byte) {
				fmt.Fprintf(w, "tenant=%s secret=%s", s.name, s.secret())
			})
			snap.Instances = append(snap.Instances, u.instance())
		}
	}
	return snap
}

// hostOwners maps every normalised host to its school, independently of
// the proxy's table.
func hostOwners(schools []school) map[string]school {
	m := map[string]school{}
	for _, s := range schools {
		for _, h := range s.hosts {
			m[h] = s
		}
	}
	return m
}

// randomHost makes a Host header: a tenant's host or a decoy, mangled.
func randomHost(rng *rand.Rand, schools []school) string {
	decoys := []string{
		"", "localhost", "127.0.0.1", "[::1]:80", "evil.example", "school.localhost.evil.example",
		"x.nairobi.school.localhost", "nairobi.school.localhos", "nairobi", "nairobi-school.localhost",
		"accra.school.localhost.accra.example", "accra.school.localhost, nairobi.school.localhost",
		"nairobi.school.localhost:80:80", "nairobi%2eschool.localhost", "ñairobi.school.localhost",
		"nairobi.school.localhost/../accra", "nairobi.school.localhost\taccra.school.localhost",
		"nairobi.school.localhost..", "..", ":80", "*.school.localhost", "_unknown",
	}
	var h string
	if rng.IntN(3) > 0 {
		s := schools[rng.IntN(len(schools))]
		h = s.hosts[rng.IntN(len(s.hosts))]
	} else {
		h = decoys[rng.IntN(len(decoys))]
	}
	if rng.IntN(2) == 0 { // random case
		b := []byte(h)
		for i := range b {
			if rng.IntN(2) == 0 {
				b[i] = byte(strings.ToUpper(string(b[i]))[0])
			}
		}
		h = string(b)
	}
	switch rng.IntN(6) {
	case 0:
		h += "."
	case 1:
		h += fmt.Sprintf(":%d", rng.IntN(70000))
	case 2:
		h += ".:8000"
	case 3:
		garbage := []string{" ", "\x00", "@", "#", "'", "<b>", "%", "-", ":", ";"}
		h = h[:rng.IntN(len(h)+1)] + garbage[rng.IntN(len(garbage))] + h[rng.IntN(len(h)+1):]
	}
	return h
}

// TestIsolationFlood sends thousands of requests with random Host headers
// and checks that every answer carries the data of the tenant owning the
// normalised host, or of none.
func TestIsolationFlood(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: -1})
	tp.Update(startSchools(t, floodSchools))
	owners := hostOwners(floodSchools)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	const requests, workers = 3000, 8
	type outcome struct {
		host   string
		status int
		body   string
	}
	results := make(chan outcome, requests)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range requests / workers {
				host := randomHost(rng, floodSchools)
				resp, err := tp.send(context.Background(), request{host: host})
				if err != nil {
					// The client refuses this Host; hand it to the handler.
					r := httptest.NewRequest(http.MethodGet, "/", nil)
					r.Host = host
					rec := httptest.NewRecorder()
					tp.ServeHTTP(rec, r)
					resp = response{status: rec.Code, body: rec.Body.String()}
				}
				results <- outcome{host, resp.status, resp.body}
			}
		}()
	}
	wg.Wait()
	close(results)

	counts := map[string]int{}
	for o := range results {
		norm, err := registry.NormalizeHost(o.host)
		owner, known := owners[norm]
		if err != nil {
			known = false
		}
		switch {
		case o.status == 200:
			counts["200"]++
			if !known || owner.state != registry.StateActive || owner.instances == 0 {
				t.Fatalf("Host %q: 200 for a host no serving tenant owns: %q", o.host, o.body)
			}
			if want := fmt.Sprintf("tenant=%s secret=%s", owner.name, owner.secret()); o.body != want {
				t.Fatalf("Host %q (owner %s): body %q", o.host, owner.name, o.body)
			}
		case known:
			counts["owned, not served"]++
			if o.status != http.StatusServiceUnavailable { // suspended, or no instance
				t.Fatalf("Host %q (owner %s): status %d", o.host, owner.name, o.status)
			}
			assertOnlyMentions(t, o.host, o.body, owner.name)
		default:
			counts["unknown"]++
			if o.status < 400 || o.status > 499 {
				t.Fatalf("Host %q (unowned): status %d, want 4xx", o.host, o.status)
			}
			assertOnlyMentions(t, o.host, o.body, "")
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["200"] < requests/4 || counts["unknown"] < requests/10 {
		t.Errorf("flood too one-sided to mean much: %v", counts)
	}
}

// assertOnlyMentions fails if body carries any school's data or names a
// school other than allowed.
func assertOnlyMentions(t *testing.T, host, body, allowed string) {
	t.Helper()
	for _, s := range floodSchools {
		if strings.Contains(body, s.secret()) || strings.Contains(body, "tenant=") {
			t.Fatalf("Host %q: a proxy answer carries tenant data: %q", host, body)
		}
		if s.name != allowed && (strings.Contains(body, s.display) || strings.Contains(body, s.name+".")) {
			t.Fatalf("Host %q: answer names %s:\n%s", host, s.name, body)
		}
	}
}

// TestConcurrentUpdatesAndRequests publishes tables while requests flow
// (run with -race): every answer still comes from the host's own tenant.
func TestConcurrentUpdatesAndRequests(t *testing.T) {
	tp := newTestProxy(t, Config{HoldTimeout: 20 * time.Millisecond})
	schools := floodSchools[:4]
	full := startSchools(t, schools)
	owners := hostOwners(schools)

	ctx, cancel := context.WithCancel(context.Background())
	var updater sync.WaitGroup
	updater.Add(1)
	go func() {
		defer updater.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for v := uint64(2); ctx.Err() == nil; v++ {
			snap := registry.Snapshot{Version: v, Tenants: full.Tenants}
			for _, in := range full.Instances {
				if rng.IntN(3) > 0 {
					in.Healthy = rng.IntN(4) > 0
					snap.Instances = append(snap.Instances, in)
				}
			}
			tp.Update(snap)
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); updater.Wait() })

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(3, uint64(w)))
			for range 200 {
				s := schools[rng.IntN(len(schools))]
				host := s.hosts[rng.IntN(len(s.hosts))]
				resp, err := tp.send(context.Background(), request{host: host})
				if err != nil {
					t.Error(err)
					return
				}
				switch resp.status {
				case 200:
					if want := "tenant=" + owners[host].name + " "; !strings.HasPrefix(resp.body, want) {
						t.Errorf("Host %s answered %q", host, resp.body)
					}
				case http.StatusServiceUnavailable, http.StatusBadGateway:
					// instance removed or unhealthy at that moment
				default:
					t.Errorf("Host %s: status %d", host, resp.status)
				}
			}
		}()
	}
	wg.Wait()
}
