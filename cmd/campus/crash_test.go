package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/store"
)

// Fault injection (issue 22): the process doing an import (the CLI), and
// the embedded database's process (campus dev, with its apps: the one
// doing a bulk delete) are killed with SIGKILL at points chosen at random (the seed is
// logged; CAMPUS_CRASH_SEED repeats a run), observed from outside by
// polling the database. After each crash: the register holds none or all
// of the write, the read model of the school's running app agrees (and
// never showed anything in between, while the write ran either), and the
// same write then succeeds.

const crashRows = 8000 // eight insert batches

var totalRE = regexp.MustCompile(`(?s)<caption[^>]*>.*?([\d,]+)\s*</caption>`)

// crashSystem is campus dev with nairobi's database at hand.
type crashSystem struct {
	root *testing.T // cleanups
	t    *testing.T
	data string
	dev  *systemtest.Dev
	db   *mongo.Database
	rng  *rand.Rand

	base int64 // rows before the write observed

	mu     sync.Mutex
	allow  []int64 // the totals the public page may show now
	seen   []string
	stopFn context.CancelFunc
}

const crashHost = "nairobi.school.localhost"

func (c *crashSystem) start() {
	c.t.Helper()
	dev, err := systemtest.StartDev(context.Background(), systemtest.DevOptions{Bin: campusBin, Data: c.data})
	if err != nil {
		c.t.Fatalf("start campus dev: %v", err)
	}
	c.dev = dev
	client, err := mongo.Connect(options.Client().ApplyURI(dev.MongoURI))
	if err != nil {
		c.t.Fatal(err)
	}
	c.root.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	names, err := client.ListDatabaseNames(c.t.Context(), bson.D{})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "nairobi") {
			c.db = client.Database(n)
		}
	}
	if c.db == nil {
		c.t.Fatalf("no database of nairobi among %v", names)
	}
}

// killDev kills campus dev (and with it the embedded database and, by
// Pdeathsig, its apps) with SIGKILL.
func (c *crashSystem) killDev() {
	c.t.Helper()
	if err := c.dev.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-c.dev.Done()
}

// register is every student as a fresh reader sees them.
func (c *crashSystem) register() []string {
	c.t.Helper()
	st := store.New(c.db, store.Options{QueryTimeout: 2 * time.Minute})
	defer st.Close(context.Background())
	var b strings.Builder
	if err := st.ExportStudents(c.t.Context(), &b, store.ExportOptions{NoBOM: true}); err != nil {
		c.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")[1:]
	for i, l := range lines { // names only: the record's other columns are empty
		lines[i] = strings.TrimSuffix(l, ",,,,,,,enrolled,,,")
	}
	slices.Sort(lines)
	return lines
}

// publicTotal is the number of students nairobi's public page shows:
// the app's read model.
func (c *crashSystem) publicTotal(ctx context.Context) (int64, error) {
	code, body, err := c.dev.Get(ctx, crashHost, "/")
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("public page: %d", code)
	}
	m := totalRE.FindStringSubmatch(body)
	if m == nil {
		return 0, nil // no table: no students
	}
	return strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
}

// watch polls the public page until stopped and records every total not
// allowed at the time.
func (c *crashSystem) watch(allow ...int64) {
	c.mu.Lock()
	c.allow = allow
	c.mu.Unlock()
	if c.stopFn != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.stopFn = func() { cancel(); <-done }
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := c.publicTotal(rctx)
			rcancel()
			if err == nil {
				c.mu.Lock()
				if !slices.Contains(c.allow, n) {
					c.seen = append(c.seen, fmt.Sprintf("%d (allowed %v)", n, c.allow))
				}
				c.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond) // pacing only: outcomes are decided by the recorded totals
		}
	}()
}

func (c *crashSystem) stopWatch() {
	if c.stopFn != nil {
		c.stopFn()
		c.stopFn = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) > 0 {
		c.t.Fatalf("the running app showed totals of a half-done write: %v", c.seen)
	}
}

// appAgrees waits until nairobi's app shows want students.
func (c *crashSystem) appAgrees(want int) {
	c.t.Helper()
	err := systemtest.Eventually(2*time.Minute, func() error {
		n, err := c.publicTotal(c.t.Context())
		if err != nil {
			return err
		}
		if n != int64(want) {
			return fmt.Errorf("the app shows %d students, the register holds %d", n, want)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// opProgress is what an outside observer sees of the newest operation.
type opProgress struct {
	seq       int64
	written   int64 // rows carrying its mark
	committed bool
}

func (c *crashSystem) progress(ctx context.Context, after int64, rows bool) (opProgress, error) {
	var p opProgress
	cur, err := c.db.Collection("operations").Find(ctx, bson.D{})
	if err != nil {
		return p, err
	}
	var docs []struct {
		ID    string `bson:"_id"`
		Seq   int64  `bson:"seq"`
		State string `bson:"state"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return p, err
	}
	for _, d := range docs {
		if d.Seq > after && d.Seq >= p.seq {
			p.seq = d.Seq
			if strings.HasSuffix(d.ID, ":end") && d.State == "committed" {
				p.committed = true
			}
		}
	}
	if p.seq == 0 || !rows {
		return p, nil
	}
	n, err := c.rowCount(ctx)
	p.written = n - c.base
	return p, err
}

// rowCount is how many documents students holds, from the server's
// collection statistics (on FerretDB an ANALYZE of the table: no document
// is read, so it keeps up with the import it observes).
func (c *crashSystem) rowCount(ctx context.Context) (int64, error) {
	var stats struct {
		Count int64 `bson:"count"`
	}
	err := c.db.RunCommand(ctx, bson.D{{Key: "collStats", Value: "students"}}).Decode(&stats)
	return stats.Count, err
}

// lastSeq is the newest operation, and sets the row count the next
// write's progress is measured from.
func (c *crashSystem) lastSeq() int64 {
	p, err := c.progress(c.t.Context(), 0, false)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.base, err = c.rowCount(c.t.Context()); err != nil {
		c.t.Fatal(err)
	}
	return p.seq
}

// killPoints are where a write is killed: once its operation is begun,
// once so many of its rows are written, or once it is committed.
func killPoints(rows int) []string {
	pts := []string{"begun"}
	for n := 1000; n <= rows; n += 1000 {
		pts = append(pts, fmt.Sprintf("rows>=%d", n))
	}
	return append(pts, "committed")
}

// waitPoint polls the database until the newest operation after seq has
// reached point, or done is closed (the writer finished first).
func (c *crashSystem) waitPoint(point string, after int64, done <-chan struct{}) bool {
	var rows int64
	if n, ok := strings.CutPrefix(point, "rows>="); ok {
		rows, _ = strconv.ParseInt(n, 10, 64)
	}
	for {
		select {
		case <-done:
			c.t.Logf("the writer finished before %s", point)
			return false
		default:
		}
		p, err := c.progress(c.t.Context(), after, rows > 0)
		if err == nil && p.seq != 0 {
			switch {
			case point == "begun", point == "committed" && p.committed, rows > 0 && p.written >= rows:
				c.t.Logf("%s killing at %s: operation %d, %d rows written, committed %v", time.Now().Format("15:04:05.000"), point, p.seq, p.written, p.committed)
				return true
			}
		}
	}
}

func writeCSV(t *testing.T, name, prefix, first string, from, n int) string {
	var b strings.Builder
	b.WriteString("registration_no,first_name,second_name\n")
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%s-%05d,%s,Otieno\n", prefix, i, first)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (c *crashSystem) importCmd(path string, extra ...string) *exec.Cmd {
	return c.dev.Command(context.Background(), append([]string{"manage", "nairobi", "students", "import", path}, extra...)...)
}

// killDuringPost logs user in to the crash school's admin, posts form to
// path in the background, and kills campus dev (its database, and with it
// the app doing the operation) once the operation is begun or committed,
// or after a random delay; the point is recorded in the seed. allow is
// what the public count may read meanwhile (watch). It then starts campus
// dev again, waits for the school's public page and returns the new system.
func (c *crashSystem) killDuringPost(t *testing.T, user, pw, path string, form url.Values, allow ...int64) *devSystem {
	t.Helper()
	ds := &devSystem{Dev: c.dev, t: t, data: c.data, proxyPort: c.dev.ProxyPort, adminAddr: c.dev.AdminAddr, mongoURI: c.dev.MongoURI}
	b := ds.browser(crashHost)
	b.c.Timeout = 3 * time.Minute // on a busy machine FerretDB is slow
	b.login(user, pw)
	code, page, _ := b.do("GET", "/admin/students/", nil)
	if code != 200 {
		t.Fatalf("student list: %d", code)
	}
	form.Set("csrf_token", csrfToken(t, page))
	c.watch(allow...)
	seq := c.lastSeq()
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		req, err := http.NewRequest(http.MethodPost, ds.url(crashHost, path), strings.NewReader(form.Encode()))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := b.c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	switch point := []string{"begun", "committed", "delay"}[c.rng.IntN(3)]; point {
	case "delay":
		delay := time.Duration(c.rng.IntN(3000)) * time.Millisecond
		t.Logf("kill point: %v after the request", delay)
		time.Sleep(delay) // the kill point: random by design, recorded in the seed
	default:
		t.Logf("kill point: %s", point)
		c.waitPoint(point, seq, posted)
	}
	c.stopWatch()
	c.killDev()
	<-posted
	c.start()
	if err := c.dev.WaitStatus(t.Context(), crashHost, "/", 200); err != nil {
		t.Fatal(err)
	}
	return &devSystem{Dev: c.dev, t: t, data: c.data, proxyPort: c.dev.ProxyPort, adminAddr: c.dev.AdminAddr, mongoURI: c.dev.MongoURI}
}

// checkNoneOrAll asserts the register is before or after, and returns
// whether it is after.
func (c *crashSystem) checkNoneOrAll(before, after []string) bool {
	c.t.Helper()
	got := c.register()
	switch {
	case slices.Equal(got, before):
		return false
	case slices.Equal(got, after):
		return true
	}
	c.t.Fatalf("the register holds %d students: neither none (%d) nor all (%d) of the write", len(got), len(before), len(after))
	return false
}

func TestCrashDuringWritesIsAllOrNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts campus dev three times and kills processes; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CAMPUS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (CAMPUS_CRASH_SEED=%d repeats this run)", seed, seed)
	c := &crashSystem{root: t, t: t, data: t.TempDir(), rng: rand.New(rand.NewPCG(seed, 22))}
	c.start()
	t.Cleanup(func() {
		if c.stopFn != nil {
			c.stopFn()
		}
		if err := c.dev.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			c.dev.LogTail(t)
		}
	})
	if err := c.dev.WaitStatus(t.Context(), crashHost, "/", 200); err != nil {
		t.Fatal(err)
	}

	// The CLI killed during imports: add mode, then update mode.
	type crashImport struct {
		name  string
		file  string
		extra []string
	}
	var imports []crashImport
	for i := range 3 {
		prefix := fmt.Sprintf("K%d", i)
		imports = append(imports, crashImport{"import " + prefix, writeCSV(t, prefix+".csv", prefix, "Kofi", 0, crashRows), nil})
	}
	// Update mode: K0's first 100 rows get a new first name (each update
	// is a scan on FerretDB), and 1,000 new rows.
	upd := writeCSV(t, "update.csv", "K0", "Zawadi", 0, 100)
	more, _ := os.ReadFile(writeCSV(t, "more.csv", "U", "Ama", 0, 1000))
	f, _ := os.OpenFile(upd, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(more[strings.IndexByte(string(more), '\n')+1:])
	f.Close()
	imports = append(imports, crashImport{"update import", upd, []string{"--update"}})

	for _, im := range imports {
		t.Run("kill the CLI during "+im.name, func(t *testing.T) {
			c.t = t
			before := c.register()
			after := c.afterImport(before, im.file, im.extra)
			pts := killPoints(crashRows)
			if len(im.extra) > 0 {
				pts = []string{"begun", "rows>=500", "rows>=1000", "committed"}
			}
			point := pts[c.rng.IntN(len(pts))]
			if p := os.Getenv("CAMPUS_CRASH_POINT"); p != "" {
				point = p
			}
			t.Logf("kill point: %s", point)
			c.watch(int64(len(before)), int64(len(after)))
			seq := c.lastSeq()
			cmd := c.importCmd(im.file, im.extra...)
			done := startCmd(t, cmd)
			if c.waitPoint(point, seq, done) {
				_ = cmd.Process.Kill()
			}
			<-done
			// Right after the kill, and after the next writer recovered.
			complete := c.checkNoneOrAll(before, after)
			t.Logf("after the kill: %s", map[bool]string{true: "all", false: "none"}[complete])
			c.appAgrees(len(map[bool][]string{true: after, false: before}[complete]))
			c.stopWatch()
			c.rerun(im.file, im.extra, complete, after)
		})
	}
	c.t = t

	t.Run("kill campus dev during an import", func(t *testing.T) {
		c.t = t
		before := c.register()
		file := writeCSV(t, "D.csv", "D", "Ama", 0, crashRows)
		after := append(slices.Clone(before), csvLines(file)...)
		slices.Sort(after)
		pts := killPoints(crashRows)
		point := pts[c.rng.IntN(len(pts))]
		t.Logf("kill point: %s", point)
		seq := c.lastSeq()
		cmd := c.importCmd(file)
		done := startCmd(t, cmd)
		killed := c.waitPoint(point, seq, done)
		c.killDev()
		<-done
		t.Logf("killed campus dev (before the CLI finished: %v); the CLI said: %s", killed, tailOf(cmd))
		c.start()
		if err := c.dev.WaitStatus(t.Context(), crashHost, "/", 200); err != nil {
			t.Fatal(err)
		}
		// The app's start rolls an interrupted import back (or the next
		// writer does); readers never see a part of it meanwhile.
		complete := c.checkNoneOrAll(before, after)
		c.appAgrees(len(map[bool][]string{true: after, false: before}[complete]))
		c.rerun(file, nil, complete, after)
	})
	c.t = t

	t.Run("kill campus dev and its app during a bulk delete", func(t *testing.T) {
		c.t = t
		pw := "long-enough-pw"
		cmd := c.dev.Command(t.Context(), "manage", "nairobi", "createsuperuser", "--username", "head", "--noinput")
		cmd.Env = append(cmd.Env, "CAMPUS_SUPERUSER_PASSWORD="+pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("createsuperuser: %v\n%s", err, out)
		}
		before := c.register()
		st := store.New(c.db, store.Options{})
		pg, err := st.ListStudents(t.Context(), store.ListOptions{PerPage: store.MaxPerPage})
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"confirm": {"yes"}}
		gone := map[string]bool{}
		for _, s := range pg.Students {
			form.Add("ids", strconv.FormatInt(s.ID, 10))
			gone[s.RegistrationNo+","+s.FirstName+","+s.SecondName] = true
		}
		var after []string
		for _, l := range before {
			if !gone[l] {
				after = append(after, l)
			}
		}
		// A bulk delete reads the school three times on FerretDB.
		ds := c.killDuringPost(t, "head", pw, "/admin/students/delete-selected/", form, int64(len(before)), int64(len(after)))
		c.watch(int64(len(before)), int64(len(after)))
		// The app's start rolls back (or the next writer does).
		complete := c.checkNoneOrAll(before, after)
		t.Logf("after the kill: %s", map[bool]string{true: "all", false: "none"}[complete])
		c.appAgrees(len(map[bool][]string{true: after, false: before}[complete]))
		c.stopWatch()
		if !complete {
			// The app has just started again (its model loads, its start
			// rolls back): on a busy machine FerretDB can answer "database
			// is locked" past SQLite's busy timeout, a 5xx; asked again.
			err := systemtest.Eventually(3*time.Minute, func() error {
				b := ds.browser(crashHost)
				b.c.Timeout = 3 * time.Minute
				code, page, _ := b.post("/admin/login/", "/admin/login/", url.Values{"username": {"head"}, "password": {pw}})
				if code != http.StatusSeeOther {
					return fmt.Errorf("login: %d %.200s", code, page)
				}
				_, page, _ = b.do("GET", "/admin/students/", nil)
				form.Set("csrf_token", csrfToken(t, page))
				if code, body, _ := b.do("POST", "/admin/students/delete-selected/", form); code != http.StatusSeeOther {
					return fmt.Errorf("the same bulk delete again: %d %.300s", code, body)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.register(); !slices.Equal(got, after) {
				t.Fatalf("after the bulk delete again: %d students, want %d", len(got), len(after))
			}
			c.appAgrees(len(after))
		}
	})
	c.t = t

	// Last: its students then have a class, which the register's lines
	// of the steps above do not expect.
	t.Run("kill campus dev and its app during a bulk change", c.crashBulkChange)
}

// afterImport is the register after importing file (as the CLI would).
func (c *crashSystem) afterImport(before []string, file string, extra []string) []string {
	rows := csvLines(file)
	if len(extra) == 0 {
		after := append(slices.Clone(before), rows...)
		slices.Sort(after)
		return after
	}
	byReg := map[string]string{}
	for _, l := range before {
		byReg[strings.SplitN(l, ",", 2)[0]] = l
	}
	for _, l := range rows {
		byReg[strings.SplitN(l, ",", 2)[0]] = l
	}
	var after []string
	for _, l := range byReg {
		after = append(after, l)
	}
	slices.Sort(after)
	return after
}

// rerun runs the same import again: it succeeds when the first left
// nothing; after a complete first one it finds nothing to change.
func (c *crashSystem) rerun(file string, extra []string, complete bool, after []string) {
	c.t.Helper()
	if complete {
		extra = []string{"--update"}
	}
	out, err := c.importCmd(file, extra...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("the same import again: %v\n%s", err, out)
	}
	if complete && !strings.Contains(string(out), " 0 new, 0 updated") {
		c.t.Fatalf("a complete import run again changed something: %s", out)
	}
	if got := c.register(); !slices.Equal(got, after) {
		c.t.Fatalf("after the import again: %d students, want %d", len(got), len(after))
	}
	c.appAgrees(len(after))
}

func csvLines(path string) []string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	return lines
}

// startCmd starts cmd with its output kept; the channel closes when it
// has exited.
func startCmd(t *testing.T, cmd *exec.Cmd) chan struct{} {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		outputs.Store(cmd, out.String())
		close(done)
	}()
	return done
}

var outputs sync.Map

func tailOf(cmd *exec.Cmd) string {
	v, _ := outputs.Load(cmd)
	s, _ := v.(string)
	return systemtest.Tail(s, 600)
}
