package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/campus-saas/campus/registry"
)

// BenchmarkErrorPage: the proxy's own page for an unknown host, in
// process (no network), with and without an Accept-Language header.
func BenchmarkErrorPage(b *testing.B) {
	tp := newTestProxy(b, Config{HoldTimeout: -1})
	tp.Update(registry.Snapshot{Version: 1})
	for _, accept := range []string{"", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"} {
		name := "no-header"
		if accept != "" {
			name = "french-browser"
		}
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "http://nope.school.localhost/", nil)
			req.Header.Set("Accept", "text/html")
			if accept != "" {
				req.Header.Set("Accept-Language", accept)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				tp.ServeHTTP(w, req)
				if w.Code != http.StatusNotFound {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
