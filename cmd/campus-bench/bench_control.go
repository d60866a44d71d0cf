package main

// `campus-bench control` (issue 26): the control API and console at size.
//
//   - create → routable: POST /api/v1/schools, then GET / of the new host
//     through the proxy until it answers 200 (the app started by campus
//     dev's supervisor), side by side with `campus tenant create` (a
//     process, as an operator's shell runs it) and the same wait;
//   - the schools list (first page and a page in the middle) and the
//     console's schools page with --schools schools in the registry,
//     beside `campus tenant list`.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/campus-saas/campus/internal/systemtest"
	"github.com/campus-saas/campus/registry"
	"github.com/campus-saas/campus/registry/embedded"
)

func runBenchControl(ctx context.Context, e *env, args []string) error {
	fs := newFlags("bench control", "", `Measure the control API and console on a running campus dev: API create → school
routable (beside campus tenant create), and the schools list and console page with
--schools schools in the registry (suspended, so that no app runs for them).`)
	creates := fs.Int("creates", 10, "schools created through the API (and as many through the CLI), one at a time")
	schools := fs.Int("schools", 10000, "schools in the registry for the list and console measurements")
	requests := fs.Int("requests", 200, "requests per list and page measurement")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	bin, err := campusBinary()
	if err != nil {
		return err
	}
	var devLog bytes.Buffer
	dev, err := systemtest.StartDev(ctx, systemtest.DevOptions{Bin: bin, Log: &devLog})
	if err != nil {
		return fmt.Errorf("start campus dev: %w\n%s", err, devLog.String())
	}
	defer dev.Stop()
	out, err := dev.Command(ctx, "operator", "token", "create", "bench").Output()
	if err != nil {
		return fmt.Errorf("operator token: %w", err)
	}
	token := strings.TrimSpace(string(out))
	port, err := systemtest.FreePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var ctlLog bytes.Buffer
	ctl := dev.Command(ctx, "control", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--proxy-admin", "http://"+dev.AdminAddr, "--log-level", "warn")
	ctl.Stdout, ctl.Stderr = &ctlLog, &ctlLog
	if err := ctl.Start(); err != nil {
		return err
	}
	defer func() { ctl.Process.Signal(syscall.SIGINT); ctl.Wait() }()
	c := &apiClient{base: base, token: token, http: &http.Client{Timeout: time.Minute}}
	if err := c.waitHealthy(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, ctlLog.String())
	}
	fmt.Fprintf(e.stdout, "# campus-bench control: %d creates, %d schools, %d requests per row; load %s\n\n", *creates, *schools, *requests, loadavg())

	// 1. Create → routable, API and CLI alternating.
	var api, cli []time.Duration
	for i := 0; i < *creates; i++ {
		for _, via := range []string{"api", "cli"} {
			name := fmt.Sprintf("bench-%s-%d", via, i)
			host := name + ".school.localhost"
			start := time.Now()
			if via == "api" {
				body := fmt.Sprintf(`{"name":%q,"hosts":[%q],"superuser":"head","email":"head@example.org"}`, name, host)
				if code, b, err := c.do(ctx, "POST", "/api/v1/schools", body); err != nil || code != http.StatusCreated {
					return fmt.Errorf("create %s: %d %v %s", name, code, err, b)
				}
			} else {
				// The same work as the API's: a first superuser (the API's has
				// a random password and an invite link).
				cmd := dev.Command(ctx, "tenant", "create", name, "--host", host, "--superuser", "head", "--superuser-email", "head@example.org")
				cmd.Env = append(cmd.Env, "CAMPUS_SUPERUSER_PASSWORD=bench-password-1")
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("campus tenant create %s: %v\n%s", name, err, out)
				}
			}
			if err := waitRoutable(ctx, dev, host); err != nil {
				return err
			}
			took := time.Since(start)
			if via == "api" {
				api = append(api, took)
			} else {
				cli = append(cli, took)
			}
			// Stop its app again: many running apps would load the machine.
			if code, b, err := c.do(ctx, "DELETE", "/api/v1/schools/"+name, ""); err != nil || code != http.StatusOK {
				return fmt.Errorf("delete %s: %d %v %s", name, code, err, b)
			}
		}
	}
	fmt.Fprintf(e.stdout, "%-44s %9s %9s %9s %6s\n", "create → routable (200 through the proxy)", "p50", "p99", "max", "n")
	row := func(what string, ds []time.Duration) {
		fmt.Fprintf(e.stdout, "%-44s %9s %9s %9s %6d\n", what, ms(pctl(ds, 50)), ms(pctl(ds, 99)), ms(pctl(ds, 100)), len(ds))
	}
	row("POST /api/v1/schools", api)
	row("campus tenant create --superuser (a process)", cli)
	fmt.Fprintf(e.stdout, "API/CLI p50 %.2f\n\n", float64(pctl(api, 50))/float64(pctl(cli, 50)))

	// 2. Fill the registry.
	reg, err := embedded.Open(dev.Data)
	if err != nil {
		return err
	}
	fillStart := time.Now()
	for i := 0; i < *schools; i++ {
		name := fmt.Sprintf("filler-%05d", i)
		t, err := registry.NewTenant(name, []string{name + ".fill.localhost"}, "")
		if err != nil {
			reg.Close()
			return err
		}
		t.State = registry.StateSuspended
		if _, err := reg.CreateTenant(ctx, t); err != nil {
			reg.Close()
			return fmt.Errorf("fill: %w", err)
		}
	}
	reg.Close()
	fmt.Fprintf(e.stdout, "filled %d suspended schools in %s\n\n", *schools, time.Since(fillStart).Round(time.Millisecond))

	// 3. The list and the console at size.
	cookie, err := c.consoleLogin(ctx)
	if err != nil {
		return err
	}
	middle := fmt.Sprintf("filler-%05d", *schools/2)
	fmt.Fprintf(e.stdout, "%-52s %9s %9s %9s %9s %6s\n", fmt.Sprintf("with %d schools", *schools+3), "first", "p50", "p99", "max", "n")
	measure := func(what string, n int, get func() error) error {
		first := time.Now()
		if err := get(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		firstTook := time.Since(first)
		var ds []time.Duration
		for i := 0; i < n; i++ {
			s := time.Now()
			if err := get(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			ds = append(ds, time.Since(s))
		}
		fmt.Fprintf(e.stdout, "%-52s %9s %9s %9s %9s %6d\n", what, ms(firstTook), ms(pctl(ds, 50)), ms(pctl(ds, 99)), ms(pctl(ds, 100)), len(ds))
		return nil
	}
	get := func(path string, cookie *http.Cookie) func() error {
		return func() error {
			code, _, err := c.get(ctx, path, cookie)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("GET %s: %d", path, code)
			}
			return err
		}
	}
	for _, m := range []struct {
		what string
		fn   func() error
	}{
		{"GET /api/v1/schools (first page of 100)", get("/api/v1/schools", nil)},
		{"GET /api/v1/schools?after=… (a middle page of 100)", get("/api/v1/schools?after="+middle, nil)},
		{"GET /api/v1/schools?state=active (filter)", get("/api/v1/schools?state=active", nil)},
		{"GET /console/ (first page of 50, sparklines)", get("/console/", cookie)},
		{"GET /console/?after=… (a middle page of 50)", get("/console/?after="+middle, cookie)},
	} {
		if err := measure(m.what, *requests, m.fn); err != nil {
			return err
		}
	}
	n := max(*requests/40, 3)
	if err := measure("campus tenant list (a process, all schools)", n, func() error {
		cmd := dev.Command(ctx, "tenant", "list")
		cmd.Stdout = io.Discard
		return cmd.Run()
	}); err != nil {
		return err
	}
	return nil
}

// pctl is the p-th percentile of ds (nearest rank).
func pctl(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// waitRoutable polls host through the proxy until it answers 200.
func waitRoutable(ctx context.Context, dev *systemtest.Dev, host string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, err := dev.Get(ctx, host, "/")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not routable after 2 minutes: %d %v", host, code, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type apiClient struct {
	base, token string
	http        *http.Client
}

func (c *apiClient) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, err := c.get(ctx, "/healthz", nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("campus control not healthy: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *apiClient) do(ctx context.Context, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get reads a page with the token, or with the console's cookie.
func (c *apiClient) get(ctx context.Context, path string, cookie *http.Cookie) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if cookie != nil {
		req.AddCookie(cookie)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// consoleLogin exchanges the token for a console session.
func (c *apiClient) consoleLogin(ctx context.Context) (*http.Cookie, error) {
	csrf := "bench-csrf-token-0123456789012345678901234567" // double submit: any value, the same twice
	form := url.Values{"token": {c.token}, "csrf_token": {csrf}}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/console/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "campus_console_csrf", Value: csrf})
	noRedirect := *c.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "campus_console" {
			return ck, nil
		}
	}
	return nil, fmt.Errorf("console log-in: %d, no session", resp.StatusCode)
}
