package supervisor

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// checker asks children whether they are ready.
type checker struct{ client *http.Client }

func newChecker(interval time.Duration) *checker {
	timeout := min(max(interval, time.Second), 5*time.Second)
	return &checker{client: &http.Client{
		Timeout: timeout,
		// No proxy from the environment, no idle connections kept to
		// children that may be gone by the next check.
		Transport: &http.Transport{
			DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// ready reports whether GET http://addr/readyz answers 200. host, when
// set, is sent as the Host header, as the proxy would.
func (k *checker) ready(ctx context.Context, addr, host string) bool {
	ok, _ := k.probe(ctx, addr, host)
	return ok
}

// probe is ready, and also reports whether the child answered at all: a
// child that answers 503 is alive but not ready (its database may be
// down); one that does not answer within the timeout may be hung (see
// Config.LivenessFailures).
func (k *checker) probe(ctx context.Context, addr, host string) (ready, answered bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false, false
	}
	if host != "" {
		req.Host = host
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return false, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK, true
}
