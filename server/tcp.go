package server

import (
	"context"
	"net"
)

type connCtxKey struct{}

// withConn keeps a request's connection in its context (http.Server.ConnContext), for
// the socket options of large downloads.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connCtxKey{}, c)
}
