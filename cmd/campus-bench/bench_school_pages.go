package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
)

var pageParam = regexp.MustCompile(`([?&])page=(\d+)`)

// fitPages asks each path that names a page once, and a page past the end
// of its list (a 404: a small school's search has few pages) is asked as
// half that page, down to page 1, so that every row measures pages that
// exist. Paths without a page are kept as they are.
func fitPages(ctx context.Context, client *http.Client, base, host string, paths []string) ([]string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		for {
			m := pageParam.FindStringSubmatchIndex(p)
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(p[m[4]:m[5]])
			code, err := status(ctx, client, base+p, host)
			if err != nil {
				return nil, err
			}
			if code != http.StatusNotFound || n <= 1 {
				break
			}
			p = p[:m[4]] + strconv.Itoa(n/2) + p[m[5]:]
		}
		out = append(out, p)
	}
	return out, nil
}

func status(ctx context.Context, client *http.Client, url, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
