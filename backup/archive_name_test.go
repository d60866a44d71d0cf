package backup

import (
	"strings"
	"testing"
)

// TestCollectionName: the names a restore accepts, at the limits.
func TestCollectionName(t *testing.T) {
	cases := map[string]bool{
		"students": true, "history_students": true, "a": true, "_x.y-z": true, "9": true,
		strings.Repeat("a", 120): true, strings.Repeat("a", 121): false,
		"": false, ".students": false, "-x": false, "stu dents": false, "stüdents": false, "a$b": false, "a/b": false,
	}
	for name, want := range cases {
		if got := collectionName(name); got != want {
			t.Errorf("collectionName(%q) = %v, want %v", name, got, want)
		}
	}
}
