package app

import (
	"strings"
	"testing"
)

// Health probes come every few seconds: a passing one is logged at debug
// level, not info, so that request logs stay readable.
func TestProbesLoggedAtDebug(t *testing.T) {
	e := newEnv(t, "probelog", envOptions{})
	b := e.browser()
	b.get("/readyz")
	b.get("/")
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"route":"GET /readyz"`) && !strings.Contains(line, `"level":"DEBUG"`) {
			t.Errorf("readyz logged above debug: %s", line)
		}
		if strings.Contains(line, `"route":"GET /{$}"`) && strings.Contains(line, `"msg":"request"`) && !strings.Contains(line, `"level":"INFO"`) {
			t.Errorf("a page request not logged at info: %s", line)
		}
	}
	if !strings.Contains(e.logs.String(), `"route":"GET /readyz"`) {
		t.Fatal("no log line for /readyz at all")
	}
}
