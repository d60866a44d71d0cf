package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// BenchmarkProxy measures the same small GET sent straight to an app
// instance and through the proxy, so the two can be read side by side:
//
//	go test -run '^$' -bench BenchmarkProxy -cpu 2 ./proxy
func BenchmarkProxy(b *testing.B) {
	page := []byte(strings.Repeat("<tr><td>Amina</td><td>Grade 7</td></tr>\n", 40)) // ~1.6 KB
	up := newUpstreamFunc(b, "nairobi", "n1", func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.URL.Path == "/healthz" { // as small as the app's
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	tp := newTestProxy(b, Config{Logger: slog.New(slog.DiscardHandler)})
	tp.Update(registry.Snapshot{Version: 1,
		Tenants:   []registry.Tenant{tenant(b, "nairobi", "Nairobi High", "nairobi.school.localhost")},
		Instances: []registry.Instance{up.instance()}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)

	for _, bc := range []struct{ name, url string }{
		{"direct", up.URL + "/students"},
		{"proxied", tp.front.URL + "/students"},
		{"direct-healthz", up.URL + "/healthz"},
		{"proxied-healthz", tp.front.URL + "/healthz"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, bc.url, nil)
					req.Host = "nairobi.school.localhost"
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// fleet is a snapshot of n tenants with one host and two instances each.
func fleet(b *testing.B, n int) registry.Snapshot {
	s := registry.Snapshot{Version: 1}
	for i := range n {
		name := fmt.Sprintf("school%05d", i)
		tn, err := registry.NewTenant(name, []string{name + ".campus.example"}, "")
		if err != nil {
			b.Fatal(err)
		}
		s.Tenants = append(s.Tenants, tn)
		for j := range 2 {
			s.Instances = append(s.Instances, registry.Instance{ID: fmt.Sprintf("%s-%d", name, j), Tenant: name,
				Addr: fmt.Sprintf("127.0.0.1:%d", 20000+(2*i+j)%40000), Healthy: true})
		}
	}
	return s
}

// BenchmarkUpdate builds routing tables for 10,000 tenants: "rebuild" is
// the steady state (tenants and instances known, one instance changed),
// "first" the first table of a new proxy (metric children created),
// "unchanged" a snapshot that only bumps the version.
func BenchmarkUpdate(b *testing.B) {
	const tenants = 10000
	a := fleet(b, tenants)
	c := fleet(b, tenants)
	c.Version = 2
	c.Instances[0].Healthy = false

	b.Run("rebuild", func(b *testing.B) {
		p, _ := New(Config{Logger: slog.New(slog.DiscardHandler)})
		p.Update(a)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i++; i%2 == 0 {
				p.Update(a)
			} else {
				p.Update(c)
			}
		}
	})
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			p, _ := New(Config{Logger: slog.New(slog.DiscardHandler)})
			b.StartTimer()
			p.Update(a)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		p, _ := New(Config{Logger: slog.New(slog.DiscardHandler)})
		p.Update(a)
		same := a
		b.ReportAllocs()
		for b.Loop() {
			same.Version++
			p.Update(same)
		}
	})
}
