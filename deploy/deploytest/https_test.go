package deploytest

import (
	"strings"
	"testing"
)

// TestComposeHTTPS: the compose proxy publishes 80 and 443, terminates
// TLS on the port 443 reaches, and has an ACME directory configured.
func TestComposeHTTPS(t *testing.T) {
	p := loadCompose(t)
	s, ok := p.Services["proxy"]
	if !ok {
		t.Fatal("no proxy service")
	}
	published := map[string]uint32{}
	for _, port := range s.Ports {
		published[port.Published] = port.Target
	}
	if published["80"] != 8000 || published["443"] != 8443 {
		t.Errorf("proxy publishes %v; want 80→8000 (HTTP: ACME challenges, redirect) and 443→8443 (HTTPS)", published)
	}
	env := func(k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if l := env("CAMPUS_TLS_LISTEN"); !strings.HasSuffix(l, ":8443") {
		t.Errorf("CAMPUS_TLS_LISTEN %q, want the port 443 is published to", l)
	}
	if d := env("CAMPUS_ACME_DIRECTORY"); !strings.HasPrefix(d, "https://") {
		t.Errorf("CAMPUS_ACME_DIRECTORY %q", d)
	}
	if !strings.Contains(strings.Join(s.Command, " "), "--listen 0.0.0.0:8000") {
		t.Errorf("proxy command %q does not listen on 8000", s.Command)
	}
}
