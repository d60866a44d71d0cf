package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
)

// runBenchAtomic is `campus-bench atomic` (issue 22): what all-or-nothing
// imports cost. The same CSV file is imported by `campus manage T
// students import`, as an operator runs it, beside a `campus dev` of the
// same binary, for this tree's binary and a --before one, rounds
// alternating between the two so that the shared machine's noise falls
// on both; each round imports into a new, empty school.
func runBenchAtomic(ctx context.Context, e *env, args []string) error {
	fs := newFlags("atomic", "", `Time a CSV import of --rows students by 'campus manage T students import' beside
'campus dev' (embedded FerretDB), for this tree's campus and a --before binary, alternating.`)
	var (
		rows   = fs.Int("rows", 100_000, "rows of the CSV file")
		rounds = fs.Int("rounds", 3, "imports per binary")
		before = fs.String("before", "", "a campus binary built from the tree to compare with (required)")
	)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *before == "" {
		return usageErr("--before: a campus binary to compare with is required")
	}
	bin, err := campusBinary()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "campus-bench-atomic-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	csvPath := filepath.Join(dir, "students.csv")
	var b strings.Builder
	b.WriteString("registration_no,first_name,second_name\n")
	for i := range *rows {
		fmt.Fprintf(&b, "ATM-%06d,%s,%s\n", i, benchFirst[i%len(benchFirst)], benchSecond[(i/len(benchFirst))%len(benchSecond)])
	}
	if err := os.WriteFile(csvPath, []byte(b.String()), 0o600); err != nil {
		return err
	}

	type system struct {
		name  string
		dev   *systemtest.Dev
		times []time.Duration
	}
	var systems []*system
	for _, s := range []struct{ name, bin string }{{"before", *before}, {"this tree", bin}} {
		data := filepath.Join(dir, strings.ReplaceAll(s.name, " ", "-"))
		fmt.Fprintf(e.stderr, "%s: starting campus dev (%s)...\n", s.name, s.bin)
		dev, err := systemtest.StartDev(ctx, systemtest.DevOptions{Bin: s.bin, Data: data, Args: []string{"--no-seed"}})
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		defer dev.Stop()
		systems = append(systems, &system{name: s.name, dev: dev})
	}
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		f := strings.Fields(string(b))
		if len(f) < 3 {
			return "?"
		}
		return strings.Join(f[:3], " ")
	}
	startLoad := load()
	for r := range *rounds {
		for _, s := range systems {
			name := fmt.Sprintf("atomic%d", r)
			run := func(args ...string) (string, error) {
				cmd := s.dev.Command(ctx, args...)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := run("tenant", "create", name, "--host", name+".school.localhost"); err != nil {
				return fmt.Errorf("%s: tenant create: %v\n%s", s.name, err, out)
			}
			start := time.Now()
			out, err := run("manage", name, "students", "import", csvPath)
			took := time.Since(start)
			if err != nil || !strings.Contains(out, fmt.Sprintf("Imported %d students", *rows)) {
				return fmt.Errorf("%s: import: %v\n%s", s.name, err, out)
			}
			s.times = append(s.times, took)
			fmt.Fprintf(e.stderr, "%s round %d: %s (load %s)\n", s.name, r+1, took.Round(10*time.Millisecond), load())
		}
	}
	fmt.Fprintf(e.stdout, "campus-bench atomic: a %d-row CSV import by `campus manage T students import` beside `campus dev` (embedded FerretDB), into a new school each round, %d rounds per binary alternating; load average %s at the start, %s at the end\n\n",
		*rows, *rounds, startLoad, load())
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "binary\tmedian\tmin\tmax\truns\t")
	med := map[string]time.Duration{}
	for _, s := range systems {
		ts := slices.Clone(s.times)
		slices.Sort(ts)
		med[s.name] = ts[len(ts)/2]
		var runs []string
		for _, t := range s.times {
			runs = append(runs, t.Round(10*time.Millisecond).String())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\n", s.name, med[s.name].Round(10*time.Millisecond), ts[0].Round(10*time.Millisecond),
			ts[len(ts)-1].Round(10*time.Millisecond), strings.Join(runs, " "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nthis tree / before (medians): %.2f× (goal: ≤ 1.5× and within 30 s)\n", float64(med["this tree"])/float64(med["before"]))
	return nil
}
