// Package httpserve runs an http.Server with the timeouts every Campus
// listener shares, and shuts it down gracefully when its context ends.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults applied by New; callers may change the returned server's
// fields before calling Serve.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 120 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
	ShutdownTimeout   = 15 * time.Second
)

// New returns a server with Campus's timeouts and header limits, whose
// error log reports TLS handshake errors at most once per
// HandshakeLogEvery with their count (errorlog.go).
func New(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          newErrorLog(logger, HandshakeLogEvery), // TLS handshake errors rate-limited
	}
}

// Serve serves on ln until ctx ends, then stops accepting, waits up to
// ShutdownTimeout for in-flight requests to finish, and closes what is left.
// It returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return fmt.Errorf("shutdown %s: requests still running after %s", ln.Addr(), ShutdownTimeout)
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), e)
	}
	return err
}

// ListenAndServe listens on addr (TCP) and calls Serve.
func ListenAndServe(ctx context.Context, srv *http.Server, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return Serve(ctx, srv, ln)
}
