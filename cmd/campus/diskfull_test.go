package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/campus-saas/campus/app"
	"github.com/campus-saas/campus/internal/engines"
	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/proxy"
)

// diskFullRows fill the 40 MB data folder of TestDevDiskFull: 100,000
// students take about 40 MB in FerretDB's SQLite file and its WAL.
const diskFullRows = 100_000

// TestDevDiskFull runs campus dev with its data folder on a 40 MB tmpfs
// and fills it with an import into nairobi, as an operator whose data
// disk filled up would (issue 23). It checks that the message names the
// disk and not FerretDB's stack, that reads answer for nairobi and for
// accra (whose database is on the same disk but which writes nothing),
// that an admin save gets the readable 503 with what was typed, that
// the alert rules' queries answer on a real Prometheus (for nairobi only:
// accra's write errors stay 0), and that once the tmpfs is grown writes
// work again without a restart. Root only (mount).
func TestDevDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts campus dev on a tmpfs and fills it; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as the data folder (mount -t tmpfs -o size=40M); run ./test.sh as root")
	}
	if os.Getenv("MONGODB_URI") != "" {
		t.Skip("fills the embedded database's data folder; with MONGODB_URI campus dev uses that server instead")
	}
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	mount(t, "-t", "tmpfs", "-o", "size=40M", "tmpfs", data)
	t.Cleanup(func() { // after campus dev stops (cleanups run last in, first out)
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", data, err, out)
		}
	})
	d := startDevData(t, data, "--idle-timeout", "0")
	const password = "correct-horse-battery"
	if out, err := d.campus([]string{"CAMPUS_SUPERUSER_PASSWORD=" + password}, "",
		"manage", "nairobi", "createsuperuser", "--username", "head", "--noinput"); err != nil {
		t.Fatalf("createsuperuser: %v\n%s", err, out)
	}
	nairobi := d.browser("nairobi.school.localhost")
	nairobi.login("head", password)

	// A real Prometheus scrapes campus dev and both apps with the rules
	// of deploy/prometheus/alerts.yml, from before the disk fills (the
	// write-error counters start at 0, so an increase shows).
	apps := d.appAddrs("nairobi.school.localhost", "accra.school.localhost")
	prom := startDiskPrometheus(t, d.adminAddr, apps)
	waitQuery(t, prom, app.MetricWriteErrors+`{tenant="nairobi"}`, func(n int) bool { return n > 0 })

	normal := d.readLatencies(40)

	csv := filepath.Join(t.TempDir(), "big.csv")
	writeStudentsCSV(t, csv, diskFullRows)
	t.Run("the import names the disk, not the database's stack", func(t *testing.T) {
		out, err := d.campus(nil, "", "manage", "nairobi", "students", "import", csv)
		if err == nil {
			t.Fatalf("import into a 40 MB data folder succeeded:\n%s", out)
		}
		for _, want := range []string{"the disk holding the data folder " + data + " is full", "Free space on that disk"} {
			if !strings.Contains(out, want) {
				t.Errorf("message lacks %q:\n%s", want, out)
			}
		}
		for _, never := range []string{".go:", "InternalError", "(13)"} {
			if strings.Contains(out, never) {
				t.Errorf("message shows the database's internals (%q):\n%s", never, out)
			}
		}
		t.Logf("campus manage said:\n%s", out)
	})

	t.Run("the register holds none of the file", func(t *testing.T) {
		// Issue 22's operations: rows of an import that did not commit
		// are seen by no reader, whether or not their removal succeeded
		// on the full disk.
		if n := d.exportedStudents("nairobi"); n != 0 {
			t.Errorf("%d of the file's %d students are in the register", n, diskFullRows)
		}
		_, page := d.get(d.client(), "nairobi.school.localhost", "/")
		if strings.Contains(page, "NBI-000000") {
			t.Error("nairobi's public page shows a student of the failed import")
		}
	})

	t.Run("reads answer while writes fail", func(t *testing.T) {
		full := d.readLatencies(40)
		for _, host := range []string{"nairobi.school.localhost", "accra.school.localhost"} {
			t.Logf("%s public page: p50 %v p99 %v normal, p50 %v p99 %v disk full", host,
				pct(normal[host], 50), pct(normal[host], 99), pct(full[host], 50), pct(full[host], 99))
		}
		if st := d.routeStatus("nairobi.school.localhost"); st != "running" {
			t.Errorf("nairobi is %q in /routes, want running (ready for reading)", st)
		}
	})

	t.Run("an admin save gets a readable 503 and keeps the input", func(t *testing.T) {
		code, page, resp := nairobi.post("/admin/students/add/", "/admin/students/add/", url.Values{
			"registration_no": {"DF/001"}, "first_name": {"Achieng"}, "second_name": {"Full-Disk"}})
		if code != http.StatusServiceUnavailable {
			t.Fatalf("save on a full disk: %d, want 503\n%.800s", code, page)
		}
		id := resp.Header.Get("X-Request-Id")
		for _, want := range []string{"cannot save right now", "disk that holds its data is full", id, `value="DF/001"`, `value="Achieng"`, `value="Full-Disk"`} {
			if id == "" || !strings.Contains(page, want) {
				t.Errorf("503 page lacks %q", want)
			}
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})

	t.Run("the alerts' queries answer on a real Prometheus, for nairobi only", func(t *testing.T) {
		rules := alertExprs(t, "CampusWritesFailNoSpace", "CampusDataDiskFull")
		got := waitQuery(t, prom, rules["CampusWritesFailNoSpace"], func(n int) bool { return n > 0 })
		for _, s := range got {
			if s.Metric["tenant"] != "nairobi" {
				t.Errorf("CampusWritesFailNoSpace fires for %v: only nairobi wrote", s.Metric)
			}
		}
		waitQuery(t, prom, rules["CampusDataDiskFull"], func(n int) bool { return n == 1 })
		r, err := prom.Query(context.Background(), app.MetricWriteErrors+`{tenant="accra"}`, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Vector) == 0 {
			t.Error("accra exposes no write-error series")
		}
		for _, s := range r.Vector {
			if s.Value != 0 {
				t.Errorf("accra, which wrote nothing, counts write errors: %v", s)
			}
		}
	})

	t.Run("the log says disk full once, naming the folder and the database", func(t *testing.T) {
		// The supervisor's watch reads the disk every few seconds: wait for
		// its line rather than expect it already written.
		if err := systemtest.Eventually(time.Minute, func() error {
			logs := d.logs.String()
			if !strings.Contains(logs, `"disk full: the disk holding the data folder`) || !strings.Contains(logs, `"data":"`+data+`"`) {
				return errors.New("campus dev logged no ERROR naming the data folder and disk full")
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		logs := d.logs.String()
		if n := strings.Count(logs, `"msg":"disk full: the database cannot save; reads go on"`); n != 1 {
			t.Errorf("nairobi's app logged %d disk-full ERROR lines for one failed save, want 1", n)
		}
	})

	t.Run("an app that restarts while the disk is full is routed again", func(t *testing.T) {
		killed := 0
		for _, pid := range childPIDs(t, d.Pid()) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if args := strings.Split(string(cmdline), "\x00"); len(args) > 3 && args[1] == "app" && args[3] == "nairobi" {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed++
			}
		}
		if killed != 1 {
			t.Fatalf("killed %d apps of nairobi, want 1", killed)
		}
		// The registry (same full disk) registers the new instance.
		d.waitFor("nairobi.school.localhost", http.StatusOK, 2*time.Minute)
		if logs := d.logs.String(); strings.Contains(logs, "register instance failed") {
			t.Error("the supervisor could not register an instance on the full disk")
		}
	})

	// Space is freed: the same import works, without a restart. 400 MB:
	// the import rolls back the failed one's rows first, and SQLite's WAL
	// holds every change until a checkpoint (200 MB fell short once).
	mount(t, "-o", "remount,size=400M", data)
	t.Run("after growing the disk the same import succeeds", func(t *testing.T) {
		code, page, _ := nairobi.post("/admin/students/add/", "/admin/students/add/", url.Values{
			"registration_no": {"DF/001"}, "first_name": {"Achieng"}, "second_name": {"Full-Disk"}})
		if code != http.StatusSeeOther {
			t.Errorf("save after growing the disk: %d, want 303\n%.500s", code, page)
		}
		out, err := d.campus(nil, "", "manage", "nairobi", "students", "import", csv)
		if err != nil {
			t.Fatalf("the same import after growing the disk: %v\n%.1000s", err, out)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(data, &st); err == nil {
			t.Logf("the data folder's disk after the import: %d MB used", (st.Blocks-st.Bfree)*uint64(st.Bsize)>>20)
		}
		if n := d.exportedStudents("nairobi"); n != diskFullRows+1 {
			t.Errorf("%d students after the import, want %d", n, diskFullRows+1)
		}
		if code, _ := d.get(d.client(), "nairobi.school.localhost", "/"); code != 200 {
			t.Errorf("nairobi's public page after the import: %d", code)
		}
	})
}

func mount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v %s", args, err, out)
	}
}

// writeStudentsCSV writes a students file of n rows.
func writeStudentsCSV(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "registration_no,first_name,second_name")
	for i := range n {
		fmt.Fprintf(w, "NBI-%06d,Firstname%d,Secondname%d\n", i, i, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// exportedStudents counts the students `campus manage T students export`
// writes: what a reader of the register sees.
func (d *devSystem) exportedStudents(tenant string) int {
	d.t.Helper()
	cmd := d.Command(context.Background(), "manage", tenant, "students", "export", "--no-bom")
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("export %s: %v", tenant, err)
	}
	return strings.Count(string(out), "\n") - 1 // the header
}

// appAddrs are the addresses of the apps of hosts, from /routes.
func (d *devSystem) appAddrs(hosts ...string) []string {
	d.t.Helper()
	resp, err := http.Get("http://" + d.adminAddr + "/routes")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r proxy.Routes
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, h := range hosts {
		for _, in := range r.Hosts[h].Instances {
			out = append(out, in.Addr)
		}
	}
	if len(out) != len(hosts) {
		d.t.Fatalf("instances of %v: %v", hosts, out)
	}
	return out
}

// readLatencies times n reads of the public page of nairobi and accra.
func (d *devSystem) readLatencies(n int) map[string][]time.Duration {
	d.t.Helper()
	c := d.client()
	out := map[string][]time.Duration{}
	for range n {
		for _, host := range []string{"nairobi.school.localhost", "accra.school.localhost"} {
			start := time.Now()
			code, body := d.get(c, host, "/")
			if code != 200 {
				d.t.Fatalf("%s public page: %d %.300s", host, code, body)
			}
			out[host] = append(out[host], time.Since(start))
		}
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond)
}

// startDiskPrometheus runs a real Prometheus that scrapes campus dev's
// admin listener and the apps every second, with the repository's alert
// rules.
func startDiskPrometheus(t *testing.T, admin string, apps []string) *engines.Prometheus {
	t.Helper()
	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	quoted := func(addrs []string) string {
		q := make([]string, len(addrs))
		for i, a := range addrs {
			q[i] = strconv.Quote(a)
		}
		return strings.Join(q, ", ")
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: campus-dev
    static_configs: [{targets: [%q]}]
  - job_name: campus-app
    honor_labels: true
    static_configs: [{targets: [%s]}]
`, rules, admin, quoted(apps))
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return engines.PrometheusForTest(t, engines.PrometheusOptions{ConfigFile: path})
}

// waitQuery polls expr on prom until ok holds for the number of series.
func waitQuery(t *testing.T, prom *engines.Prometheus, expr string, ok func(int) bool) model.Vector {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := prom.Query(context.Background(), expr, time.Time{})
		if err == nil && ok(len(r.Vector)) {
			return r.Vector
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, %v series", expr, err, len(r.Vector))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// alertExprs reads the expressions of the named alerts from the rules file.
func alertExprs(t *testing.T, names ...string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if slices.Contains(names, r.Alert) {
				out[r.Alert] = r.Expr
			}
		}
	}
	if len(out) != len(names) {
		t.Fatalf("alerts %v: found %v", names, out)
	}
	return out
}
