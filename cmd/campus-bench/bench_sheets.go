package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/campus-saas/campus/store"
)

// runBenchSheets measures an .xlsx import against the same rows as CSV
// (issue 27, item 3): the parse alone in this process, and the browser
// import's preview in a fresh `campus app` process per upload (its peak
// resident memory, VmHWM, and the request's time).
func runBenchSheets(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench sheets", "", `Measure reading a spreadsheet: the same --students rows (registration number, names and a
Class column, which is ignored) as a CSV file and as an .xlsx workbook. First the parse alone
(store.ParseStudents) in this process, --rounds times each format alternating: time, bytes
allocated. Then the admin's import preview (upload, parse, check against the database, the
preview page) in a fresh `+"`campus app`"+` process per upload, formats alternating: the request's
time and the app's peak resident memory (VmHWM) before and after. With --baseline, the CSV
preview also runs against that campus binary (e.g. built from an older commit). Last, the school
is filled with the rows and exported in both formats in this process: time and size.`)
	var (
		mo       mongoOptions
		students = fs.Int("students", store.MaxImportRows, "rows in each file")
		rounds   = fs.Int("rounds", 3, "rounds of each measurement and format")
		baseline = fs.String("baseline", "", "another campus binary whose CSV preview is measured beside (no .xlsx there)")
	)
	mo.register(fs)
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *students < 1 || *students > store.MaxImportRows {
		return usageErr("--students must be 1-%d", store.MaxImportRows)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	csvFile, xlsxFile, err := sheetsFiles(*students)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d rows: CSV %.1f MB, .xlsx %.1f MB; load %s\n", *students,
		float64(len(csvFile))/1e6, float64(len(xlsxFile))/1e6, loadAverage())

	type format struct {
		name, file string
		data       []byte
	}
	formats := []format{{"CSV", "students.csv", csvFile}, {".xlsx", "students.xlsx", xlsxFile}}

	// The parse alone.
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "parse (this process)\tround\ttime\tallocated\trows\t")
	parse := map[string][]time.Duration{}
	for r := range *rounds {
		for _, f := range formats {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			p, err := store.ParseStudents(bytes.NewReader(f.data), store.ParseOptions{Name: f.file})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err != nil || len(p.Rows) != *students {
				return fmt.Errorf("parse %s: %d rows, %v", f.name, len(p.Rows), err)
			}
			parse[f.name] = append(parse[f.name], took)
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f MB\t%d\t\n", f.name, r+1, took.Round(time.Millisecond),
				float64(after.TotalAlloc-before.TotalAlloc)/1e6, len(p.Rows))
		}
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "parse median: CSV %s, .xlsx %s (%.1f×)\n\n", median(parse["CSV"]).Round(time.Millisecond),
		median(parse[".xlsx"]).Round(time.Millisecond), ratio(median(parse[".xlsx"]), median(parse["CSV"])))

	// The app's preview, each upload in a fresh app process.
	dir, err := os.MkdirTemp("", "campus-bench-sheets-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	uri, backend, stopDB, err := mo.benchDatabase(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer stopDB()
	fmt.Fprintf(e.stdout, "database: %s\n", backend)
	school, err := benchSchool(ctx, uri, fmt.Sprint("sheets", time.Now().UnixNano()%1e6), logger)
	if err != nil {
		return err
	}
	defer school.close()
	school.stopApp()
	client, err := school.adminClient(ctx, 1)
	if err != nil {
		return err
	}
	self, err := campusBinary()
	if err != nil {
		return err
	}
	type target struct {
		label, bin string
		f          format
	}
	targets := []target{{"CSV", self, formats[0]}, {".xlsx", self, formats[1]}}
	if *baseline != "" {
		// Without the Class column, which a campus before .xlsx refuses.
		plain := format{"CSV, 3 columns", "students.csv", dropLastColumn(csvFile)}
		targets = append(targets, target{"CSV, 3 columns", self, plain}, target{"CSV, 3 columns, --baseline", *baseline, plain})
	}
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "preview (fresh campus app)\tround\trequest\tVmHWM ready\tVmHWM after\tload\t")
	peak := map[string][]float64{}
	took := map[string][]time.Duration{}
	for r := range *rounds {
		for _, tg := range targets {
			child, err := startAppChildOf(ctx, tg.bin, school.t, uri, e.stderr)
			if err != nil {
				return err
			}
			ready := vmHWM(child)
			start := time.Now()
			err = previewUpload(ctx, client, child.addr, school.t.PrimaryHost, tg.f.file, tg.f.data, *students)
			d := time.Since(start)
			after := vmHWM(child)
			child.stop()
			if err != nil {
				return fmt.Errorf("%s preview: %w", tg.label, err)
			}
			peak[tg.label] = append(peak[tg.label], after)
			took[tg.label] = append(took[tg.label], d)
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f MB\t%.0f MB\t%s\t\n", tg.label, r+1, d.Round(time.Millisecond), ready, after, loadAverage())
		}
	}
	tw.Flush()
	versus := func(a, b string) {
		fmt.Fprintf(e.stdout, "median %s / %s: request %.2f×, peak memory %.2f×\n", a, b,
			ratio(median(took[a]), median(took[b])), median(peak[a])/median(peak[b]))
	}
	versus(".xlsx", "CSV")
	if *baseline != "" {
		versus("CSV, 3 columns", "CSV, 3 columns, --baseline")
	}

	// The export of the same students, in this process.
	if _, rowErrs, err := school.st.ImportStudents(ctx, benchRows(*students), nil); err != nil || len(rowErrs) > 0 {
		return fmt.Errorf("fill the school: %v %v", err, rowErrs)
	}
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nexport (this process)\tround\ttime\tsize\t")
	for r := range *rounds {
		for _, f := range []string{store.ExportCSV, store.ExportXLSX} {
			var out bytes.Buffer
			start := time.Now()
			if err := school.st.ExportStudents(ctx, &out, store.ExportOptions{Format: f}); err != nil {
				return fmt.Errorf("export %s: %w", f, err)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f MB\t\n", f, r+1, time.Since(start).Round(time.Millisecond), float64(out.Len())/1e6)
		}
	}
	tw.Flush()
	return nil
}

// dropLastColumn is a CSV without its last column (no quotes in it).
func dropLastColumn(file []byte) []byte {
	var b bytes.Buffer
	for l := range strings.Lines(string(file)) {
		b.WriteString(l[:strings.LastIndexByte(l, ',')])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// sheetsFiles are the same rows as a CSV and as an .xlsx, the workbook
// written as Excel saves one: its text in the shared strings table.
func sheetsFiles(n int) (csvFile, xlsxFile []byte, err error) {
	header := []string{"registration_no", "first_name", "second_name", "Class"}
	var cb bytes.Buffer
	cw := csv.NewWriter(&cb)
	cw.Write(header)
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetRow("Sheet1", "A1", &header); err != nil {
		return nil, nil, err
	}
	for i, s := range benchRows(n) {
		row := []string{s.RegistrationNo, s.FirstName, s.SecondName, fmt.Sprintf("Form %d%c", 1+i%4, 'A'+rune(i%3))}
		cw.Write(row)
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := f.SetSheetRow("Sheet1", cell, &row); err != nil {
			return nil, nil, err
		}
	}
	cw.Flush()
	var xb bytes.Buffer
	if _, err := f.WriteTo(&xb); err != nil {
		return nil, nil, err
	}
	return cb.Bytes(), xb.Bytes(), nil
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// previewUpload uploads a file to the import page and checks that the
// preview offers to import want rows.
func previewUpload(ctx context.Context, c *http.Client, addr, host, name string, data []byte, want int) error {
	get := func(req *http.Request) (string, error) {
		req.Host = host
		res, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", req.URL.Path, res.Status)
		}
		return string(b), err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/admin/students/import/", nil)
	form, err := get(req)
	if err != nil {
		return err
	}
	m := csrfInput.FindStringSubmatch(form)
	if m == nil {
		return fmt.Errorf("no csrf_token on the import page")
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf_token", m[1])
	mw.WriteField("mode", "add")
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/admin/students/import/", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	page, err := get(req)
	if err != nil {
		return err
	}
	if w := fmt.Sprintf("Import %s students", formatThousands(want)); !strings.Contains(page, w) {
		return fmt.Errorf("the preview does not offer %q", w)
	}
	return nil
}

func formatThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// vmHWM is the child's peak resident memory so far, in MB (Linux).
func vmHWM(c *appChild) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
