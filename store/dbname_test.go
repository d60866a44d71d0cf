package store

import (
	"strings"
	"testing"
)

// TestCheckDatabaseName: the names Open accepts, at the limits.
func TestCheckDatabaseName(t *testing.T) {
	cases := map[string]bool{
		"acme": true, "t_0123abcd": true, "a-b_C9": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "a.b": false, "a b": false, "a/b": false, "é": false,
		"admin": false, "local": false, "config": false,
	}
	for name, ok := range cases {
		if err := checkDatabaseName(name); (err == nil) != ok {
			t.Errorf("checkDatabaseName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
