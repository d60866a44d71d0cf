package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --trusted-proxies list that does not parse is a usage error before
// anything starts: campus dev creates no data folder.
func TestTrustedProxiesRefusedBeforeStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, cmd := range [][]string{
		{"proxy", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--trusted-proxies", "10.0.0.0/8,lb.example.org"},
		{"dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data", data, "--trusted-proxies", "10.0.0.1/8"},
	} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := run(context.Background(), e, cmd); code != 2 || !strings.Contains(errb.String(), "--trusted-proxies") {
			t.Errorf("campus %s: exit %d, want 2 naming --trusted-proxies:\n%s", strings.Join(cmd, " "), code, errb.String())
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("campus %s: data folder %s exists after the refusal (%v)", cmd[0], data, err)
		}
	}
}
