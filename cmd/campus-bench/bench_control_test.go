package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `campus-bench control`, small: it runs to the end and prints every row
// (a behaviour check of the bench; its timings are not looked at).
func TestBenchControlSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, benchBin, "control", "--campus", campusBin, "--creates", "1", "--schools", "30",
		"--requests", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("bench control: %v\n%s", err, out)
	}
	for _, want := range []string{"POST /api/v1/schools", "campus tenant create --superuser", "filled 30 suspended schools",
		"with 33 schools", "GET /api/v1/schools (first page of 100)", "GET /console/ (first page of 50", "campus tenant list"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}
}
