package proxy

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/campus-saas/campus/registry"
)

// BenchmarkHTTP2FirstPage measures what a new browser's first page costs
// over HTTP/2 with and without the rapid-reset catch-up (abuse.go), side
// by side in one run: a new TLS connection, the page, then four assets at
// once over it. "plain" serves a listener not wrapped by LimitListener, so
// requests do not wait for the server to act on the frames read with
// them; "catch-up" is the proxy as deployed.
//
//	go test -run '^$' -bench BenchmarkHTTP2FirstPage -cpu 2 -count 5 ./proxy
func BenchmarkHTTP2FirstPage(b *testing.B) {
	up := newUpstreamFunc(b, "nairobi", "n1", func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = w.Write([]byte("<html>ok</html>\n"))
	})
	for _, bc := range []struct {
		name string
		wrap bool
	}{{"plain", false}, {"catch-up", true}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := newTestProxy(b, Config{Logger: slog.New(slog.DiscardHandler), AccessLog: slog.New(slog.DiscardHandler)})
			tp.Update(registry.Snapshot{Version: 1,
				Tenants:   []registry.Tenant{tenant(b, "nairobi", "Nairobi High", "nairobi.school.localhost")},
				Instances: []registry.Instance{up.instance()}})
			srv := httptest.NewUnstartedServer(tp.Proxy)
			if bc.wrap {
				srv.Listener = tp.LimitListener(srv.Listener)
			}
			srv.EnableHTTP2 = true
			srv.Config.ConnContext = tp.ConnContext
			srv.StartTLS()
			defer srv.Close()
			b.ReportAllocs()
			for b.Loop() {
				tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
				client := &http.Client{Transport: tr}
				get := func(path string) error {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
					req.Host = "nairobi.school.localhost"
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
						b.Fatalf("%s over HTTP/%d", resp.Status, resp.ProtoMajor)
					}
					return nil
				}
				if err := get("/"); err != nil {
					b.Fatal(err)
				}
				var g errgroup.Group
				for _, p := range []string{"/static/a.css", "/static/b.js", "/static/c.png", "/static/d.svg"} {
					g.Go(func() error { return get(p) })
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
				tr.CloseIdleConnections()
			}
		})
	}
}
