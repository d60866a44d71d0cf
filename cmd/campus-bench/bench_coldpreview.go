package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/campus-saas/campus/store"
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
	csv := benchCSV(c.size, rows)
	cookies, tokens, err := cs.adminSessions(ctx, c, st, n)
	if err != nil {
		return err
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
			body, ctype := multipartForm(map[string]string{"csrf_token": tokens[i]}, csv)
			start := time.Now()
			_, code, err := cs.send(ctx, c, http.MethodPost, "/admin/students/import/", cookies[i], ctype, body)
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
		cs.name, n, rows, float64(len(csv))/1e6, c.size)
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

// benchCSV is a CSV of n rows numbered from first (benchRows).
func benchCSV(first, n int) []byte {
	var csv bytes.Buffer
	csv.WriteString("registration_no,first_name,second_name\n")
	for _, r := range benchRows(first + n)[first:] {
		fmt.Fprintf(&csv, "%s,%s,%s\n", r.RegistrationNo, r.FirstName, r.SecondName)
	}
	return csv.Bytes()
}

var formValueRe = regexp.MustCompile(`name="(csrf_token|plan|payload|name)" value="([^"]*)"`)

// formValues are the hidden fields of a page's form.
func formValues(body []byte) map[string]string {
	out := map[string]string{}
	for _, m := range formValueRe.FindAllSubmatch(body, -1) {
		out[string(m[1])] = html.UnescapeString(string(m[2]))
	}
	return out
}

// adminSessions makes n superusers of c's school, each with a session,
// and returns their cookies and the tokens of their import forms.
func (cs *coldSystem) adminSessions(ctx context.Context, c *coldClass, st *store.Store, n int) (cookies, tokens []string, err error) {
	if err := waitOK(ctx, "http://"+cs.sys.proxyAddr+"/", c.t.PrimaryHost, time.Minute); err != nil {
		return nil, nil, err
	}
	for i := range n {
		u, err := st.CreateSuperuser(ctx, fmt.Sprintf("bench%d-%d", i, time.Now().UnixNano()%1e9), "", "bench-password-1")
		if err != nil {
			return nil, nil, fmt.Errorf("create a superuser: %w", err)
		}
		token, _, err := st.CreateSession(ctx, u)
		if err != nil {
			return nil, nil, fmt.Errorf("create a session: %w", err)
		}
		cookie := "campus_session=" + token
		body, code, err := cs.send(ctx, c, http.MethodGet, "/admin/students/import/", cookie, "", nil)
		if err != nil || code != http.StatusOK || formValues(body)["csrf_token"] == "" {
			return nil, nil, fmt.Errorf("the import page: %d %v", code, err)
		}
		cookies, tokens = append(cookies, cookie), append(tokens, formValues(body)["csrf_token"])
	}
	return cookies, tokens, nil
}

// multipartForm encodes fields, and the file when not nil.
func multipartForm(fields map[string]string, file []byte) (*bytes.Buffer, string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", "students.csv")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	return &body, mw.FormDataContentType()
}

// browserImport imports rows new to c's school as a person does on its
// import page: a preview, then the confirmation, which its app applies
// (before this tree: within the request; since: in the background, the
// answer being a redirect to the import's progress page). The outcome
// says how the confirmation was answered and after how long (the client
// follows the redirect), and when the school held the rows (polled every
// 250 ms); a confirmation answered otherwise (a 504 from the proxy when
// the app takes longer than its upstream timeout) is reported with what
// the page said. err is for the bench's own failures.
func (cs *coldSystem) browserImport(ctx context.Context, c *coldClass, rows int) (outcome string, err error) {
	st, err := tenancy.OpenStore(ctx, cs.sys.uri, c.t.Database)
	if err != nil {
		return "", err
	}
	defer st.Close(context.WithoutCancel(ctx))
	cookies, tokens, err := cs.adminSessions(ctx, c, st, 1)
	if err != nil {
		return "", err
	}
	body, ctype := multipartForm(map[string]string{"csrf_token": tokens[0]}, benchCSV(c.size, rows))
	start := time.Now()
	page, code, err := cs.send(ctx, c, http.MethodPost, "/admin/students/import/", cookies[0], ctype, body)
	form := formValues(page)
	if err != nil || code != http.StatusOK || form["plan"] == "" {
		return "", fmt.Errorf("the import's preview: %d %v: %s", code, err, pageError(page))
	}
	previewed := time.Since(start)
	form["confirm"] = "yes"
	body, ctype = multipartForm(form, nil)
	start = time.Now()
	page, code, err = cs.send(ctx, c, http.MethodPost, "/admin/students/import/", cookies[0], ctype, body)
	confirmed := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("the import's confirmation: %w", err)
	}
	answer := "the students page"
	if bytes.Contains(page, []byte(`id="import-progress"`)) || bytes.Contains(page, []byte(`id="import-done"`)) {
		answer = "the import's progress page"
	}
	// What the school holds once its app is done (it may go on after the
	// proxy gave up, or after the answer).
	var n int64
	applied := time.Duration(0)
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if n, err = st.CountStudents(ctx); err == nil && n == int64(c.size+rows) {
			applied = time.Since(start)
			break
		}
	}
	outcome = fmt.Sprintf("preview %s, confirmation %d (%s) after %s", previewed.Round(time.Millisecond), code, answer, confirmed.Round(time.Millisecond))
	if code != http.StatusOK {
		outcome += " (" + pageError(page) + ")"
	}
	if applied > 0 {
		outcome += fmt.Sprintf(", all rows visible %s after the confirmation", applied.Round(time.Millisecond))
	}
	return outcome + fmt.Sprintf(", then %d students", n), nil
}

var alertRe = regexp.MustCompile(`(?s)class="alert[^"]*"[^>]*>(.*?)</div>`)

// pageError is the alert a page shows, if any (for an error message).
func pageError(page []byte) string {
	if m := alertRe.FindSubmatch(page); m != nil {
		return strings.Join(strings.Fields(string(m[1])), " ")
	}
	return ""
}
