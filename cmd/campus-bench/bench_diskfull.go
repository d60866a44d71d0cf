package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/internal/loadgen"
	"github.com/campus-saas/campus/internal/systemtest"
)

// runBenchDiskFull: `campus-bench diskfull` (issue 23).
func runBenchDiskFull(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench diskfull", "", `Measure the public pages of a school whose writes fail because the disk is full, and of
a neighbour on the same disk, against the same pages with room to spare, in one run. Runs
campus dev (the --campus binary) with its data folder on a tmpfs of --size (root only: mount),
imports --students into nairobi and --neighbour into accra (campus manage ... students import),
then measures both public pages (normal); fills the disk with a file, has an import into
nairobi fail on it (as an operator's would), and measures again (disk full): the first
--first reads one by one right after the failed import, then closed-loop load.`)
	var (
		students    = fs.Int("students", 100_000, "students of nairobi, the school whose writes fail (0: none, and the failing import itself fills the disk, as in issue 23: use --size 40M)")
		neighbour   = fs.Int("neighbour", 1_000, "students of accra, the neighbour on the same disk")
		size        = fs.String("size", "400M", "size of the tmpfs holding the data folder")
		duration    = fs.Duration("duration", 5*time.Second, "length of each load round")
		rounds      = fs.Int("rounds", 3, "load rounds per school and state (alternating schools)")
		concurrency = fs.Int("concurrency", 2, "closed-loop clients per round")
		first       = fs.Int("first", 20, "reads of each school timed one by one right after the failed import")
	)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("bench diskfull mounts a tmpfs as the data folder: run it as root")
	}
	bin, err := campusBinary()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "campus-bench-diskfull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	data := filepath.Join(work, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+*size, "tmpfs", data).CombinedOutput(); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %v %s", data, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			fmt.Fprintf(e.stderr, "umount %s: %v %s\n", data, err, out)
		}
	}()
	fmt.Fprintf(e.stderr, "starting campus dev on a %s tmpfs...\n", *size)
	d, err := systemtest.StartDev(ctx, systemtest.DevOptions{Bin: bin, Data: data, Args: []string{"--idle-timeout", "0", "--log-level", "error"}})
	if err != nil {
		return err
	}
	defer d.Stop()
	importCSV := func(tenant, path string) (string, time.Duration, error) {
		// Bounded: a campus that waits for space before it exits (the
		// tree before issue 23) is stopped and measured all the same.
		ctx, cancel := context.WithTimeout(ctx, importWithin)
		defer cancel()
		start := time.Now()
		out, err := d.Command(ctx, "manage", tenant, "students", "import", path).CombinedOutput()
		if ctx.Err() != nil {
			err = fmt.Errorf("did not return within %s: stopped", importWithin)
		}
		return strings.TrimSpace(string(out)), time.Since(start), err
	}
	for _, s := range []struct {
		tenant, prefix string
		n              int
	}{{"nairobi", "NBI", *students}, {"accra", "ACC", *neighbour}} {
		if s.n == 0 {
			continue
		}
		path := filepath.Join(work, s.tenant+".csv")
		if err := writeBenchCSV(path, s.prefix, s.n); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "importing %d students into %s...\n", s.n, s.tenant)
		if out, took, err := importCSV(s.tenant, path); err != nil {
			return fmt.Errorf("import into %s: %v\n%s", s.tenant, err, out)
		} else {
			fmt.Fprintf(e.stderr, "  %s (%s)\n", out, took.Round(time.Millisecond))
		}
	}
	hosts := []string{"nairobi.school.localhost", "accra.school.localhost"}
	for _, h := range hosts { // the apps have loaded the imports
		if err := waitOK(ctx, "http://"+d.ProxyAddr+"/", h, 2*time.Minute); err != nil {
			return err
		}
	}
	measure := func(state string) (map[string]loadgen.Result, error) {
		fmt.Fprintf(e.stderr, "measuring (%s)...\n", state)
		out := map[string]loadgen.Result{}
		for range *rounds {
			for _, h := range hosts {
				r, err := loadgen.Run(ctx, loadgen.Config{Target: "http://" + d.ProxyAddr + "/", Host: h,
					Concurrency: *concurrency, Duration: *duration})
				if err != nil {
					return nil, err
				}
				out[h] = merge(out[h], r)
			}
		}
		return out, nil
	}
	normal, err := measure("normal")
	if err != nil {
		return err
	}

	// Fill the disk, then an import into nairobi fails on it.
	filler := filepath.Join(data, "filler")
	if *students > 0 {
		if err := fillDisk(filler); err != nil {
			return err
		}
	}
	second := filepath.Join(work, "second.csv")
	if err := writeBenchCSV(second, "NEW", max(*students, 100_000)); err != nil {
		return err
	}
	out, took, err := importCSV("nairobi", second)
	if err == nil {
		return fmt.Errorf("the import into a full disk succeeded: %s", out)
	}
	var st syscall.Statfs_t
	_ = syscall.Statfs(data, &st)
	fmt.Fprintf(e.stderr, "the import failed after %s, as it should (%d bytes free):\n%s\n", took.Round(time.Millisecond), uint64(st.Bavail)*uint64(st.Bsize), out)
	firstReads := map[string]durations{}
	client := &http.Client{Timeout: time.Minute}
	for range *first {
		for _, h := range hosts {
			start := time.Now()
			code, err := benchGet(ctx, client, "http://"+d.ProxyAddr+"/", h)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("%s while the disk is full: %d %v", h, code, err)
			}
			firstReads[h] = append(firstReads[h], time.Since(start))
		}
	}
	full, err := measure("disk full")
	if err != nil {
		return err
	}
	if err := os.Remove(filler); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}

	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &load[0], &load[1], &load[2])
	}
	fmt.Fprintf(e.stdout, "campus bench diskfull: nairobi %d students (its writes fail), accra %d (same disk), GET / through the proxy, "+
		"%d rounds × %s × %d clients per school and state, warm; load average %.2f %.2f %.2f\n\n",
		*students, *neighbour, *rounds, *duration, *concurrency, load[0], load[1], load[2])
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "school\tstate\trequests\tnon-200\tp50\tp99\tmax\tp50 ratio\tp99 ratio\t")
	for _, h := range hosts {
		name := strings.TrimSuffix(h, ".school.localhost")
		n, f := normal[h], full[h]
		fmt.Fprintf(w, "%s\tnormal\t%d\t%d\t%s\t%s\t%s\t\t\t\n", name, n.Requests, n.Non2xx+n.Errors, msf(n.P50), msf(n.P99), msf(n.Max))
		fmt.Fprintf(w, "%s\tdisk full\t%d\t%d\t%s\t%s\t%s\t%.2f\t%.2f\t\n", name, f.Requests, f.Non2xx+f.Errors, msf(f.P50), msf(f.P99), msf(f.Max),
			ratio(f.P50, n.P50), ratio(f.P99, n.P99))
		fr := firstReads[h]
		fmt.Fprintf(w, "%s\tfirst %d reads after the failed import\t%d\t0\t%s\t%s\t%s\t\t\t\n", name, len(fr), len(fr), msf(fr.pct(50)), msf(fr.pct(99)), msf(fr.max()))
	}
	return w.Flush()
}

// importWithin bounds each import of the bench.
const importWithin = 3 * time.Minute

// writeBenchCSV writes a students file of n rows, registration numbers
// PREFIX-000000 on.
func writeBenchCSV(path, prefix string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "registration_no,first_name,second_name")
	for i := range n {
		fmt.Fprintf(w, "%s-%06d,Firstname%d,Secondname%d\n", prefix, i, i, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fillDisk writes zeros to path until the disk is full.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, 1<<20)
	for {
		if _, err := f.Write(zeros); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

func benchGet(ctx context.Context, c *http.Client, target, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
