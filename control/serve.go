package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeConfig is how Serve listens.
type ServeConfig struct {
	Listen string
	// CertFile and KeyFile, when set, serve HTTPS (docs/PRODUCTION.md).
	CertFile, KeyFile string
	// Ready, when set, gets the listener's address once it listens.
	Ready func(addr net.Addr)
}

// Serve serves s on cfg.Listen until ctx ends, then shuts down
// gracefully (30 s for calls in progress: a restore or a backup may
// stream for long). It also runs s.Stats' scrape loop and prunes the audit
// trail (AuditKeep).
func Serve(ctx context.Context, s *Server, cfg ServeConfig) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("control server: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: archives stream in and out
		// for as long as they take; MaxUpload bounds an upload.
	}
	s.logger().Info("control server listening", "addr", ln.Addr().String(), "tls", cfg.CertFile != "")
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if s.Stats != nil {
		go s.Stats.Run(sctx)
	}
	go s.pruneAudit(sctx)
	errc := make(chan error, 1)
	go func() {
		if cfg.CertFile != "" {
			errc <- srv.ServeTLS(ln, cfg.CertFile, cfg.KeyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("control server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("control server: shut down: %w", err)
	}
	return nil
}
