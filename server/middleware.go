package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"safedav/server/auth"
)

type ctxKey int

const reqKey ctxKey = 0

// reqState travels with a request through the middleware and handlers. It is the
// request's context too (answering Value(reqKey) with itself), and holds the status
// writer and the X-Request-Id field, so that the middleware allocates once per request.
type reqState struct {
	context.Context
	id        string
	principal string     // the authenticated user, "" when anonymous
	user      *auth.User // nil: anonymous, the whole store

	sw    statusWriter
	idHdr [1]string
	// smallHdr holds the header values of a small GET's answer (serveSmall), so that
	// they too share this allocation.
	smallHdr [5]string
}

func (st *reqState) Value(key any) any {
	if key == reqKey {
		return st
	}
	return st.Context.Value(key)
}

func stateOf(r *http.Request) *reqState {
	if st, ok := r.Context().Value(reqKey).(*reqState); ok {
		return st
	}
	return &reqState{}
}

// principal is the user a request acts for; locks and idempotency records are theirs.
func principal(r *http.Request) string { return stateOf(r).principal }

// middleware wraps h, outermost first: request ID, access log, panic recovery.
func (s *Server) middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{Context: r.Context()}
		st.id = requestID(r.Header["X-Request-Id"])
		st.idHdr[0] = st.id
		hdr := w.Header()
		hdr["X-Request-Id"] = st.idHdr[:]
		hdr["Server"] = s.serverHeader
		sw := &st.sw
		sw.ResponseWriter = w
		r = r.WithContext(st)
		defer func() {
			v := recover()
			switch {
			case v == http.ErrAbortHandler:
				// A response broken off on purpose (a listing that failed midway): log
				// it with the status that was sent, then let net/http cut the connection.
				defer panic(v)
			case v != nil:
				s.log.Error("panic", "request_id", st.id, "panic", v)
				if sw.status == 0 {
					s.writeError(sw, r, errors.New("panic"))
				}
			}
			if !s.log.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			msg := "request"
			if v == http.ErrAbortHandler {
				msg = "request aborted"
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, msg,
				slog.String("request_id", st.id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.EscapedPath()),
				slog.Int("status", sw.code()),
				slog.Int64("bytes", sw.bytes),
				slog.Duration("duration", time.Since(start)),
				slog.String("user", st.principal),
				slog.String("remote", r.RemoteAddr))
		}()
		h.ServeHTTP(sw, r)
	})
}

var (
	idPrefix  = func() (p [6]byte) { _, _ = rand.Read(p[:]); return p }()
	idCounter atomic.Uint64
)

// requestID keeps a sane client-supplied ID (so a proxy's ID ties logs together) or
// makes a new one.
func requestID(in []string) string {
	if len(in) > 0 && validID(in[0]) {
		return in[0]
	}
	// A random prefix per process and a counter: unique, without 12 random bytes per
	// request.
	var b [12]byte
	copy(b[:6], idPrefix[:])
	n := idCounter.Add(1)
	for i := 11; i >= 6; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	var id [24]byte
	hex.Encode(id[:], b[:])
	return string(id[:])
}

// validID reports whether a client's request ID can be used as it is: 1 to 128
// printable ASCII characters, no spaces.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// statusWriter records the status and size for the access log. It forwards ReadFrom
// so GET keeps the zero-copy sendfile path of net/http.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
