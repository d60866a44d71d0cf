package httpserve

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// ServeTLS is Serve over TLS with cfg (HTTP/2 and HTTP/1.1 as cfg's
// NextProtos allow).
func ServeTLS(ctx context.Context, srv *http.Server, ln net.Listener, cfg *tls.Config) error {
	srv.TLSConfig = cfg
	return Serve(ctx, srv, tls.NewListener(ln, cfg))
}
