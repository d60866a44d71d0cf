package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/tenancy"
)

// previewsWhileIdle is `campus-bench coldstart --sizes … --previews N`
// (issue 20: "4 parallel 100,000-row import previews took one app from 34
// to 537 MB, and it stayed at 505 MB"): N people, each with their own
// session, upload a CSV of rows new to the biggest school to its import
// page at once; the app's RSS is sampled every 50 ms throughout, and read
// again after the previews, the school kept in use meanwhile (its idle
// stop would end the process).
func (cs *coldSystem) previewsWhileIdle(ctx context.Context, e *env, n, rows int) error {
	c := cs.classes[0]
	for _, k := range cs.classes {
		if k.size > c.size {
			c = k
		}
	}
	s := cs.sys
	st, err := tenancy.OpenStore(ctx, s.uri, c.t.Database)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	var csv bytes.Buffer
	csv.WriteString("registration_no,first_name,second_name\n")
	for _, r := range benchRows(c.size + rows)[c.size:] {
		fmt.Fprintf(&csv, "%s,%s,%s\n", r.RegistrationNo, r.FirstName, r.SecondName)
	}
	cookies := make([]string, n)
	for i := range n {
		u, err := st.CreateSuperuser(ctx, fmt.Sprintf("preview%d-%d", i, time.Now().UnixNano()%1e6), "", "bench-password-1")
		if err != nil {
			return fmt.Errorf("create a superuser: %w", err)
		}
		token, _, err := st.CreateSession(ctx, u)
		if err != nil {
			return fmt.Errorf("create a session: %w", err)
		}
		cookies[i] = "campus_session=" + token
	}
	if err := waitOK(ctx, "http://"+s.proxyAddr+"/", c.t.PrimaryHost, time.Minute); err != nil {
		return err
	}
	// The forms' tokens (each session's own).
	tokenRe := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	tokens := make([]string, n)
	for i := range n {
		body, code, err := cs.send(ctx, c, http.MethodGet, "/admin/students/import/", cookies[i], "", nil)
		m := tokenRe.FindSubmatch(body)
		if err != nil || code != http.StatusOK || m == nil {
			return fmt.Errorf("the import page: %d %v", code, err)
		}
		tokens[i] = string(m[1])
	}
	pid := func() int {
		for _, x := range s.sup.Status() {
			if x.Tenant == c.t.Name && x.PID != 0 {
				return x.PID
			}
		}
		return 0
	}
	rssBefore, anonBefore := rssAnonOf(pid())

	var (
		mu    sync.Mutex
		codes = map[int]int{}
		peak  int64
		took  durations
	)
	sctx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for sctx.Err() == nil {
			if rss, _ := rssAnonOf(pid()); rss > 0 {
				mu.Lock()
				peak = max(peak, rss)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			_ = mw.WriteField("csrf_token", tokens[i])
			fw, _ := mw.CreateFormFile("file", "students.csv")
			_, _ = fw.Write(csv.Bytes())
			_ = mw.Close()
			start := time.Now()
			_, code, err := cs.send(ctx, c, http.MethodPost, "/admin/students/import/", cookies[i], mw.FormDataContentType(), &body)
			if err != nil {
				code = 0
			}
			mu.Lock()
			codes[code]++
			took = append(took, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	done := time.Now()
	// The school in use after (pages), then its RSS.
	for time.Since(done) < 5*time.Second && ctx.Err() == nil {
		_, _, _ = s.get(ctx, c.t, "/")
		time.Sleep(100 * time.Millisecond)
	}
	stopSampling()
	sampler.Wait()
	rssAfter, anonAfter := rssAnonOf(pid())

	fmt.Fprintf(e.stdout, "\n%s: %d people upload a %d-row CSV (%.1f MB) to the %d-student school's import page at once (previews)\n",
		cs.name, n, rows, float64(csv.Len())/1e6, c.size)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "answers\tslowest\tRSS before (anonymous)\tpeak\tRSS 5 s after (anonymous)\t")
	var answers []string
	for _, code := range slices.Sorted(func(yield func(int) bool) {
		for k := range codes {
			if !yield(k) {
				return
			}
		}
	}) {
		answers = append(answers, fmt.Sprintf("%d × %d", codes[code], code))
	}
	fmt.Fprintf(w, "%s\t%s\t%.0f (%.0f) MB\t%.0f MB\t%.0f (%.0f) MB\t\n", strings.Join(answers, ", "), msf(took.max()),
		float64(rssBefore)/1e6, float64(anonBefore)/1e6, float64(peak)/1e6, float64(rssAfter)/1e6, float64(anonAfter)/1e6)
	return w.Flush()
}

// send makes one request to the school through the proxy with a session
// cookie, and returns the body.
func (cs *coldSystem) send(ctx context.Context, c *coldClass, method, path, cookie, contentType string, body io.Reader) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+cs.sys.proxyAddr+path, body)
	if err != nil {
		return nil, 0, err
	}
	req.Host = c.t.PrimaryHost
	req.Header.Set("Cookie", cookie)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := cs.sys.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}
