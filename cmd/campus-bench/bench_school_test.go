package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `campus-bench school`, small, with the big school's app in its own
// process (the default): it runs to the end, prints every row, repeated
// and varied, and no request of any row failed or answered other than 2xx.
// (A behaviour check of the bench; its timings are not looked at.)
func TestBenchSchoolSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, benchBin, "school", "--campus", campusBin, "--students", "300", "--duration", "100ms",
		"--concurrency", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("bench school: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"its own process", "import of 300 CSV rows", "0 not 200", "public /", "varied: public pages",
		"repeated: search one word (amina)", "varied: search one word", "varied: search accents", "varied: search two words",
		"varied: search reg no", "varied: search no match", "admin sort -second_name, varied deep pages",
		"varied: admin search one word", "small school, big one loaded"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the output:\n%s", want, text)
		}
	}
	rows := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasSuffix(f[len(f)-1], "x") || f[0] == "name" {
			continue
		}
		rows++
		// ... errors non-2xx ratio
		if errs, non2xx := f[len(f)-3], f[len(f)-2]; errs != "0" || non2xx != "0" {
			t.Errorf("row with errors %s, non-2xx %s: %s", errs, non2xx, line)
		}
	}
	if rows != 33 { // 31 rows of the big school, 2 of the small one
		t.Errorf("%d table rows, want 33:\n%s", rows, text)
	}
}
