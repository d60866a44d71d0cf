package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// `campus-bench coldstart --sizes`, small: it fills a school per size,
// wakes each, runs the import phase and prints every row. (A behaviour
// check of the bench; its timings are not looked at.)
func TestBenchColdSizesSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, benchBin, "coldstart", "--campus", campusBin, "--sizes", "0,300", "--wakes", "2",
		"--import-rows", "100", "--import-via", "cli,browser", "--previews", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("bench coldstart --sizes: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"start→ready p50", "this tree         0", "this tree       300", "RSS in use p50", "heap_alloc",
		"3 people upload a 100-row CSV", "RSS 5 s after",
		"a 100-row import (another process", "a 100-row import (through the school's import page", "into the 400-student school",
		"2 s before", "during the import", "10 s after"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the output:\n%s", want, text)
		}
	}
}

func TestParseSizes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"0,10000,100000", []int{0, 10000, 100000}, true},
		{" 5 , 7", []int{5, 7}, true},
		{"100001", nil, false},
		{"-1", nil, false},
		{"a,1", nil, false},
		{"", nil, false},
	} {
		got, err := parseSizes(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(got, tc.want)) {
			t.Errorf("parseSizes(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
