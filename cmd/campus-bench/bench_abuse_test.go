package main

import (
	"slices"
	"testing"
)

func TestAbuseFloods(t *testing.T) {
	for _, tc := range []struct {
		list    string
		want    []string // kinds, in order
		wantErr bool
	}{
		{"rapid-reset,bad-chunks", []string{"rapid-reset", "bad-chunks"}, false},
		{"rapid-reset", []string{"rapid-reset"}, false},
		{" bad-chunks , rapid-reset", []string{"bad-chunks", "rapid-reset"}, false},
		{"rapid-reset,slowloris", nil, true},
		{"", nil, true},
	} {
		floods, err := abuseFloods(tc.list)
		if (err != nil) != tc.wantErr {
			t.Errorf("abuseFloods(%q): error %v, want error %v", tc.list, err, tc.wantErr)
			continue
		}
		var kinds []string
		for _, f := range floods {
			kinds = append(kinds, f.kind)
		}
		if !slices.Equal(kinds, tc.want) {
			t.Errorf("abuseFloods(%q) = %v, want %v", tc.list, kinds, tc.want)
		}
	}
}
