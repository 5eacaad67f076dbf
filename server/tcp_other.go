//go:build !linux

package server

import "net/http"

// cork does nothing here: TCP_CORK is Linux's. (The BSDs' TCP_NOPUSH is close, but has
// not been measured with net/http's sendfile, and macOS's has had bugs with it.) The
// headers and the file of a large download then go out as the kernel sees fit, which
// Linux measured 15% slower on loopback.
func cork(*http.Request) (uncork func()) { return func() {} }
