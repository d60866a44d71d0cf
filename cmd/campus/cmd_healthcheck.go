package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

func runHealthcheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags("healthcheck", "URL", "Exit 0 when URL answers with a 2xx status, 1 otherwise. For container health checks, e.g.\n  campus healthcheck http://127.0.0.1:8080/readyz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want exactly one URL")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return usageErr("bad URL: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: %s answered %s", fs.Arg(0), resp.Status)
	}
	fmt.Fprintln(e.stdout, "healthy")
	return nil
}
