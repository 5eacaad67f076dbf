// Package server is safedav's HTTP layer: configuration, middleware, the WebDAV method
// handlers (one file per method family) and the one place errors become responses.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"safedav/backend"
	"safedav/coord"
	"safedav/locks"
	"safedav/overwrite"
	"safedav/server/auth"
	"safedav/server/idem"
)

// Config is everything the server needs; main builds it from flags and environment.
type Config struct {
	Backend backend.Backend
	// Locks holds the WebDAV locks; nil: an in-memory locks.Manager. A replica of a
	// cluster passes the shared one (package cluster).
	Locks coord.Locks
	// Idempotency records the responses of writes sent with an Idempotency-Key; nil:
	// an in-memory store with the default 24 h retention.
	Idempotency coord.Idempotency
	// Uploads registers the uploads in progress; nil: this process's own table.
	Uploads coord.Uploads
	// Scoped gives every request but GET and HEAD a coord.Scope, which a replica's
	// shared state (package cluster) needs to carry what a request has seen from one
	// call to the next.
	Scoped bool
	Logger *slog.Logger // nil: discard

	// TLS, when set, serves HTTPS (and HTTP/2) with a reloadable certificate.
	TLS *CertReloader
	// Users enables Basic authentication with per-user roots and permissions; nil
	// serves everyone anonymously with Anonymous access.
	Users *auth.Users
	// Anonymous is the access of requests when Users is nil.
	Anonymous Anonymous
	// Realm is the Basic authentication realm (default "safedav").
	Realm string
	// Limiter rate-limits failed logins per client address (default 10 a minute).
	Limiter *auth.Limiter
	// AllowInfiniteDepth permits PROPFIND Depth: infinity, which RFC 4918 §9.1 lets a
	// server refuse because one request can walk the whole store.
	AllowInfiniteDepth bool
	// MaxUploadSize caps one upload in bytes (0: no cap): 413 before the body is read
	// when Content-Length shows it, or as soon as a chunked body passes it.
	MaxUploadSize int64

	// Overwrite decides what an upload onto an existing name does.
	Overwrite overwrite.Rules
	// LockConflictStatus is the status of a write refused for someone else's lock:
	// 423 (RFC 4918) by default, 409 for clients that only understand that.
	LockConflictStatus int
	// MaxXMLBody bounds PROPFIND/PROPPATCH/LOCK bodies (default 1 MiB).
	MaxXMLBody int64
	// MaxPropfindEntries bounds one PROPFIND Depth: infinity answer (default 100,000).
	MaxPropfindEntries int
	// InflightWait is how long a conditional upload waits for another upload to the
	// same name to finish before it is answered 409 upload_in_progress (default 5 s).
	InflightWait time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish on shutdown.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds the time a client may take to send a request's line and
	// headers (default 20 s), so that a client trickling its headers (slowloris) cannot
	// hold a connection.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection may wait for its next request
	// (default 2 min).
	IdleTimeout time.Duration
	// Version is reported in the Server header.
	Version string
}

func (c *Config) setDefaults() error {
	if c.Backend == nil {
		return errors.New("server: no backend configured")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LockConflictStatus == 0 {
		c.LockConflictStatus = http.StatusLocked
	}
	if c.LockConflictStatus != http.StatusLocked && c.LockConflictStatus != http.StatusConflict {
		return fmt.Errorf("server: lock conflict status must be 423 or 409, not %d", c.LockConflictStatus)
	}
	if c.Realm == "" {
		c.Realm = "safedav"
	}
	if c.Limiter == nil {
		c.Limiter = auth.NewLimiter(auth.DefaultMaxFailures, auth.DefaultWindow, nil)
	}
	if c.MaxXMLBody <= 0 {
		c.MaxXMLBody = 1 << 20
	}
	if c.MaxPropfindEntries <= 0 {
		c.MaxPropfindEntries = 100_000
	}
	if c.InflightWait <= 0 {
		c.InflightWait = 5 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 20 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.Idempotency == nil {
		st, err := idem.Open(idem.Options{})
		if err != nil {
			return err
		}
		c.Idempotency = coord.LocalIdempotency(st)
	}
	if c.Locks == nil {
		m, err := locks.NewManager(locks.Options{})
		if err != nil {
			return err
		}
		c.Locks = coord.LocalLocks(m)
	}
	if c.Uploads == nil {
		c.Uploads = new(coord.UploadTable)
	}
	return nil
}

// Server serves one backend over WebDAV.
type Server struct {
	cfg      Config
	b        backend.Backend
	props    backend.PropStore // nil when the backend keeps no dead properties
	locks    coord.Locks
	idem     coord.Idempotency
	inflight coord.Uploads
	log      *slog.Logger
	handler  http.Handler
	now      func() time.Time
	// serverHeader is the Server response header, built once.
	serverHeader []string
}

// New checks cfg and builds a Server; it fails on an invalid configuration.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, b: cfg.Backend, locks: cfg.Locks, log: cfg.Logger, now: time.Now, idem: cfg.Idempotency, inflight: cfg.Uploads}
	s.props, _ = cfg.Backend.(backend.PropStore)
	s.serverHeader = []string{"safedav/" + cfg.Version}
	s.handler = s.middleware(s.authenticate(http.HandlerFunc(s.serveDAV)))
	return s, nil
}

// ServeHTTP serves one request through the whole middleware chain.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// maxHeaderBytes bounds a request's line and headers; net/http answers 431 beyond it
// (it reads up to 4 KiB more before it gives up, see http.Server.MaxHeaderBytes). WebDAV
// requests carry no large headers: an If header with a few lock tokens is the longest.
const maxHeaderBytes = 64 << 10

// HTTPServer returns an http.Server for s, HTTP/1.1 and (over TLS) HTTP/2, with the
// timeouts a public server needs.
//
// It sets no ReadTimeout or WriteTimeout on purpose: net/http applies them to the
// whole request or response, body included, and a WebDAV upload or download of many
// GiB over a slow link may take hours; a deadline short enough to stop an abuser would
// cut them. What bounds a connection instead: ReadHeaderTimeout for the request's
// line and headers (a slowloris client), IdleTimeout between requests, MaxHeaderBytes,
// MaxUploadSize for bodies, and TCP keep-alive (on by default on the listeners net
// gives) for a peer that vanished in the middle of a body.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       withConn,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops accepting,
// lets in-flight requests (uploads above all) finish within ShutdownTimeout, and returns
// nil if they all did.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.HTTPServer()
	serve := func() error { return hs.Serve(ln) }
	if s.cfg.TLS != nil {
		hs.TLSConfig = s.cfg.TLS.TLSConfig()
		serve = func() error { return hs.ServeTLS(ln, "", "") } // ServeTLS offers HTTP/2
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down; waiting for in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	return nil
}

// serveDAV is the method switch.
func (s *Server) serveDAV(w http.ResponseWriter, r *http.Request) {
	if err := s.authorize(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Scoped && r.Method != http.MethodGet && r.Method != http.MethodHead {
		r = r.WithContext(coord.WithScope(r.Context()))
	}
	var err error
	switch r.Method {
	case http.MethodOptions:
		err = s.handleOptions(w, r)
	case http.MethodGet, http.MethodHead:
		err = s.handleGet(w, r)
	case http.MethodPut:
		err = s.idempotent(w, r, s.handlePut)
	case http.MethodDelete:
		err = s.handleDelete(w, r)
	case "MKCOL":
		err = s.handleMkcol(w, r)
	case "COPY", "MOVE":
		err = s.idempotent(w, r, s.handleCopyMove)
	case "PROPFIND":
		err = s.handlePropfind(w, r)
	case "PROPPATCH":
		err = s.handleProppatch(w, r)
	case "LOCK":
		err = s.handleLock(w, r)
	case "UNLOCK":
		err = s.handleUnlock(w, r)
	default:
		err = &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "This server does not support the " + r.Method + " method.",
			Header:  http.Header{"Allow": {allowedMethods}}}
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

const allowedMethods = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK"
