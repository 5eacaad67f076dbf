// Package http1 serves an http.Handler over plain HTTP/1.x connections with less
// per-request machinery than net/http's server: no goroutine per request to watch for a
// closed connection unless the handler asks for one (by waiting on its context's Done),
// and a response whose headers and small body leave in one write.
//
// Parsing is net/http's own (http.ReadRequest), with the checks net/http's server adds
// after it (Host, header names and values, protocol version, header size), so a request
// means the same here as there. TLS and HTTP/2 stay on net/http.
//
// Not supported, because safedav does not use them: Hijack, trailers, HTTP/2 over
// cleartext, and a handler reading its request body after it has started its response.
package http1

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves Handler on the connections of the listeners given to Serve. Its zero
// value apart from Handler is usable: no timeouts, a 1 MiB header limit.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the time to read a request's line and headers.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection;
	// zero means ReadHeaderTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (default 1 MiB).
	MaxHeaderBytes int
	// ConnContext, if set, derives the context of a connection's requests.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ErrorLog receives handler panics and accept errors; nil discards them.
	ErrorLog *slog.Logger
	// ErrorBody, if set, renders the body of the answers the server gives on its own
	// (a malformed request, headers too large); otherwise they are plain text.
	ErrorBody func(status int, reason string) (contentType string, body []byte)

	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	inShutdown atomic.Bool

	newConnGrace time.Duration // tests shorten it
}

// Serve accepts connections on ln and serves each on its own goroutine. It returns
// http.ErrServerClosed after Shutdown or Close, or the listener's error; ln is closed
// when it returns.
func (s *Server) Serve(ln net.Listener) error {
	defer ln.Close()
	if !s.track(&ln, true) {
		return http.ErrServerClosed
	}
	defer s.track(&ln, false)
	base := context.Background()
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient failure: wait and retry, as
				// net/http does, instead of spinning or giving up.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("accept error; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		ctx := base
		if s.ConnContext != nil {
			ctx = s.ConnContext(ctx, rw)
		}
		c := newConn(s, rw, ctx)
		if !s.addConn(c) {
			rw.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, lets requests in flight finish
// (their connections close after the response) and returns nil when all are done, or
// ctx's error if it ends first (the connections are then left to Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		(*ln).Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		c.rwc.Close()
	}
	return nil
}

func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeIdle closes the connections waiting for a request and reports whether none
// are left.
func (s *Server) closeIdle() bool {
	grace := cmp.Or(s.newConnGrace, newConnGrace)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) ||
			time.Since(c.accepted) > grace && c.state.CompareAndSwap(stateNew, stateClosed) {
			c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) logf(msg string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Warn(msg, args...)
	}
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return http.DefaultMaxHeaderBytes
}
