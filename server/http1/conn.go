package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// A connection is new until its first request is read, idle while it waits for (and
// reads) another, active while it answers one. Shutdown closes idle connections, and new
// ones after newConnGrace, as net/http does: a client that has just connected is most
// likely sending a request.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
	stateNew
)

const newConnGrace = 5 * time.Second

// maxDrain is how much of a request body the handler left unread the server reads
// to keep the connection; with more left it closes the connection instead (as
// net/http does, with the same limit).
const maxDrain = 256 << 10

// writeBufSize holds a response's headers and a small body, which then leave in one
// write; larger bodies go out with writev next to what is buffered.
const writeBufSize = 8 << 10

// aLongTimeAgo is a deadline in the past: it makes a blocked Read return at once.
var aLongTimeAgo = time.Unix(1, 0)

type conn struct {
	srv        *Server
	rwc        net.Conn
	tcp        *net.TCPConn // nil on other connections: no sendfile
	ctx        context.Context
	remoteAddr string
	state      atomic.Int32
	accepted   time.Time

	cr connReader
	br *bufio.Reader

	wbuf []byte // response bytes not yet written
	werr error  // the first write error; the connection closes after it
	pend []byte // a response's body before its headers are out, or its chunk
	wmu  sync.Mutex

	cur *reqCtx // the request being served, cancelled if the handler panics
}

func newConn(s *Server, rwc net.Conn, ctx context.Context) *conn {
	c := &conn{srv: s, rwc: rwc, ctx: ctx, remoteAddr: rwc.RemoteAddr().String(),
		wbuf: make([]byte, 0, writeBufSize)}
	c.tcp, _ = rwc.(*net.TCPConn)
	c.state.Store(stateNew)
	c.accepted = time.Now()
	c.cr.c = c
	c.cr.cond.L = &c.cr.mu
	c.cr.remain = math.MaxInt64
	c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	return c
}

// serve answers the connection's requests until it closes, fails, or the server
// shuts down.
func (c *conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.logf("panic serving "+c.remoteAddr, "panic", v, "stack", string(debug.Stack()))
			}
			if c.cur != nil {
				c.cur.cancel(context.Canceled)
			}
			c.cr.stopWatch()
		}
		c.rwc.Close()
		c.state.Store(stateClosed)
		c.srv.removeConn(c)
	}()
	idle := c.srv.IdleTimeout
	if idle == 0 {
		idle = c.srv.ReadHeaderTimeout
	}
	lastPost := false
	for first := true; ; first = false {
		if first {
			// The first request's whole header is bounded once, from the accept.
			if d := c.srv.ReadHeaderTimeout; d > 0 {
				c.rwc.SetReadDeadline(time.Now().Add(d))
			}
		} else if c.br.Buffered() == 0 && !c.cr.pending() {
			if idle > 0 {
				c.rwc.SetReadDeadline(time.Now().Add(idle))
			}
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if d := c.srv.ReadHeaderTimeout; d > 0 && !first && !c.headerBuffered() {
			c.rwc.SetReadDeadline(time.Now().Add(d))
		}
		c.cr.setLimit(c.srv.maxHeaderBytes() + 4096) // net/http's slack for the request line
		if lastPost {
			// RFC 9112 §2.2: old clients send a line break after a POST body; skip it
			// as net/http does.
			peek, _ := c.br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			c.br.Discard(n)
		}
		req, err := http.ReadRequest(c.br)
		if err != nil {
			c.readFailed(err) // before lifting the limit: it tells a too large header
			return
		}
		c.cr.setLimit(math.MaxInt64)
		from := stateIdle
		if first {
			from = stateNew
		}
		if !c.state.CompareAndSwap(from, stateActive) {
			return // Shutdown closed it while the request arrived
		}
		lastPost = req.Method == http.MethodPost
		if c.srv.ReadHeaderTimeout > 0 || idle > 0 {
			c.rwc.SetReadDeadline(time.Time{}) // bodies have no deadline: uploads of GiBs are normal
		}
		if !c.serveRequest(req) || c.srv.inShutdown.Load() {
			c.closeWrite()
			return
		}
		c.state.Store(stateIdle)
	}
}

// headerBuffered reports whether a whole request header is already read, so that
// reading it cannot wait for the network (and needs no deadline of its own).
func (c *conn) headerBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// serveRequest checks a parsed request as net/http's server does, runs the handler
// and finishes the response. It reports whether the connection may carry another
// request.
func (c *conn) serveRequest(req *http.Request) (keepAlive bool) {
	if status, reason := checkRequest(req); status != 0 {
		c.answer(status, reason)
		return false
	}
	continues := false
	if req.Header.Get("Expect") != "" {
		if !httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
			// RFC 9110 §10.1.1: an expectation we cannot meet.
			c.answer(http.StatusExpectationFailed, "unsupported Expect header")
			return false
		}
		// An HTTP/1.0 client cannot understand 100 Continue: it sends its body
		// anyway (RFC 9110 §10.1.1), so the expectation is ignored.
		continues = req.ProtoAtLeast(1, 1)
	}
	req.RemoteAddr = c.remoteAddr

	x := &reqAlloc{ctx: reqCtx{Context: c.ctx, c: c}}
	rctx := &x.ctx
	c.cur = rctx
	// The request is ours alone: give it its context in place (WithContext's copy of
	// it then stays on the stack).
	*req = *req.WithContext(rctx)
	w := &x.w
	*w = response{c: c, req: req, header: make(http.Header), cl: -1,
		head: req.Method == http.MethodHead, closeAfter: req.Close || c.srv.inShutdown.Load()}
	c.pend = c.pend[:0]
	c.cr.startRequest(rctx)
	if req.Body == nil || req.Body == http.NoBody {
		req.Body = http.NoBody
		c.cr.bodyFinished()
	} else {
		x.body = body{c: c, w: w, r: req.Body, expectContinue: continues}
		w.body = &x.body
		req.Body = w.body
	}

	c.srv.Handler.ServeHTTP(w, req)
	rctx.cancel(context.Canceled)
	c.cur = nil
	w.finish()
	c.flush()
	c.cr.stopWatch()
	if c.werr != nil || w.closeAfter {
		return false
	}
	return w.body == nil || w.body.drain()
}

// checkRequest does what net/http's server checks after parsing (server.go,
// readRequest): RFC 9112 §3.2 requires a valid Host in HTTP/1.1, and header names and
// values must be tokens and field content.
func checkRequest(req *http.Request) (status int, reason string) {
	if req.ProtoMajor != 1 {
		return http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	}
	// http.ReadRequest has refused a second Host and moved the one into req.Host (which
	// the request line's authority, if any, overrides); so an empty Host header counts
	// as a missing one here.
	switch {
	case req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect:
		return http.StatusBadRequest, "missing required Host header"
	case !httpguts.ValidHostHeader(req.Host):
		return http.StatusBadRequest, "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return http.StatusBadRequest, "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return http.StatusBadRequest, "invalid header value"
			}
		}
	}
	return 0, ""
}

// readFailed answers a request that could not be read, where an answer makes sense.
func (c *conn) readFailed(err error) {
	var oe *net.OpError // not net.Error: a malformed URL's *url.Error is one too
	switch {
	case c.cr.hitLimit():
		c.answer(http.StatusRequestHeaderFieldsTooLarge, "request headers too large")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &oe):
		// The client went away or was too slow: nobody to answer.
		return
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"),
		strings.HasPrefix(err.Error(), "too many transfer encodings"):
		// net/http answers both with 501. (The messages of other errors quote the
		// request, so only their starts tell them apart.)
		c.answer(http.StatusNotImplemented, "unsupported transfer encoding")
	default:
		c.answer(http.StatusBadRequest, "malformed request")
	}
	c.closeWrite()
}

// answer sends a response of the server's own, after which the connection closes.
func (c *conn) answer(status int, reason string) {
	ct, body := "text/plain; charset=utf-8", []byte(reason+"\n")
	if c.srv.ErrorBody != nil {
		ct, body = c.srv.ErrorBody(status, reason)
	}
	c.wbuf = appendStatusLine(c.wbuf, status)
	c.wbuf = appendField(c.wbuf, "Content-Type", ct)
	c.wbuf = appendField(c.wbuf, "Content-Length", strconv.Itoa(len(body)))
	c.wbuf = appendField(c.wbuf, "Connection", "close")
	c.wbuf = appendField(c.wbuf, "Date", dateValue())
	c.wbuf = append(c.wbuf, "\r\n"...)
	c.write(body)
	c.flush()
}

// closeWrite ends a connection the server chose to close: the client may still be
// sending (a body we did not read, a pipelined request), and closing with unread data
// makes the kernel reset the connection, which destroys our response if the client
// has not read it yet. So half-close and read what comes for a moment; if more keeps
// coming than is worth reading, stop reading and give the client the rest of the
// moment to read the answer (as net/http does, sleeping 500 ms) before the reset.
func (c *conn) closeWrite() {
	if c.tcp == nil {
		return
	}
	c.flush()
	if c.tcp.CloseWrite() != nil {
		return
	}
	deadline := time.Now().Add(rstAvoidanceDelay)
	c.rwc.SetReadDeadline(deadline)
	if _, err := io.CopyN(io.Discard, c.rwc, maxDrain); err == nil {
		time.Sleep(time.Until(deadline))
	}
}

// rstAvoidanceDelay is how long a closing connection waits for its client to read the
// last answer (net/http's value).
const rstAvoidanceDelay = 500 * time.Millisecond

// write queues p, writing what is queued when p does not fit.
func (c *conn) write(p []byte) {
	if c.werr != nil {
		return
	}
	if len(c.wbuf)+len(p) <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, p...)
		return
	}
	if len(c.wbuf) == 0 {
		_, c.werr = c.rwc.Write(p)
		return
	}
	bufs := net.Buffers{c.wbuf, p} // one writev
	_, c.werr = bufs.WriteTo(c.rwc)
	c.wbuf = c.wbuf[:0]
}

// flush writes what is queued.
func (c *conn) flush() {
	if len(c.wbuf) == 0 || c.werr != nil {
		c.wbuf = c.wbuf[:0]
		return
	}
	_, c.werr = c.rwc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
}

// writeContinue sends "100 Continue" when a handler first reads a body whose client
// waits for it (RFC 9110 §10.1.1), unless the response has started.
func (c *conn) writeContinue(w *response) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if w.committed || w.wroteBody {
		return errors.New("http1: request body read after the response started")
	}
	c.write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	c.flush()
	return c.werr
}

// body is a request's body as the handler sees it. Close does not read the rest:
// after the handler the server reads at most maxDrain of it or closes the connection.
type body struct {
	c              *conn
	w              *response
	r              io.Reader // http.ReadRequest's body: it decodes chunks and stops at the length
	expectContinue bool      // the client waits for 100 Continue before sending
	read           int64
	eof, closed    bool
	err            error
}

func (b *body) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.eof:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	if b.expectContinue {
		b.expectContinue = false
		if err := b.c.writeContinue(b.w); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
		b.c.cr.bodyFinished()
	case err != nil:
		b.err = err
	}
	return n, err
}

// Close makes further reads fail; it reads nothing.
func (b *body) Close() error {
	b.closed = true
	return nil
}

// unfinished reports whether bytes of the body may still be on the wire.
func (b *body) unfinished() bool { return !b.eof }

// tooBigToDrain reports whether reading the rest of the body is not worth it, or not
// allowed: its client waits for 100 Continue, which it will no longer get.
func (b *body) tooBigToDrain() bool {
	if b.expectContinue || b.err != nil {
		return true
	}
	cl := b.w.req.ContentLength
	return cl < 0 || cl-b.read > maxDrain
}

// drain reads what the handler left of the body, so the connection can carry the
// next request; it reports whether that worked.
func (b *body) drain() bool {
	if b.eof {
		return true
	}
	if b.tooBigToDrain() {
		return false
	}
	_, err := io.CopyN(io.Discard, b.r, maxDrain+1)
	return err == io.EOF
}

// connReader is the bufio.Reader's source: it limits header reads, and keeps the
// byte a background read took while it watched for the client going away.
type connReader struct {
	c      *conn
	mu     sync.Mutex
	cond   sync.Cond
	remain int64 // what a header read may still take

	hasByte bool
	byteBuf [1]byte

	// Watching for a closed connection: a background read, started when the
	// request's context is asked for Done and its body is read (or absent), stopped
	// before the next request is read.
	rctx                         *reqCtx
	bodyDone, wantWatch, stopped bool
	inRead, aborted              bool
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.inRead {
		cr.mu.Unlock()
		return 0, errors.New("http1: read while watching the connection")
	}
	if cr.remain <= 0 {
		cr.mu.Unlock()
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	if cr.hasByte && len(p) > 0 {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.remain--
		cr.mu.Unlock()
		return 1, nil
	}
	cr.mu.Unlock()
	n, err := cr.c.rwc.Read(p)
	cr.mu.Lock()
	cr.remain -= int64(n)
	cr.mu.Unlock()
	return n, err
}

func (cr *connReader) setLimit(n int64) {
	cr.mu.Lock()
	cr.remain = n
	cr.mu.Unlock()
}

func (cr *connReader) hitLimit() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.remain <= 0
}

// pending reports whether a byte of the next request is held.
func (cr *connReader) pending() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.hasByte
}

func (cr *connReader) startRequest(rctx *reqCtx) {
	cr.mu.Lock()
	cr.rctx = rctx
	cr.bodyDone, cr.wantWatch, cr.stopped = false, false, false
	cr.mu.Unlock()
}

// bodyFinished notes that the body is read, so a watch may start.
func (cr *connReader) bodyFinished() {
	cr.mu.Lock()
	cr.bodyDone = true
	cr.maybeWatchLocked()
	cr.mu.Unlock()
}

// watch is called when the request's context is asked for Done.
func (cr *connReader) watch() {
	cr.mu.Lock()
	cr.wantWatch = true
	cr.maybeWatchLocked()
	cr.mu.Unlock()
}

func (cr *connReader) maybeWatchLocked() {
	if !cr.wantWatch || !cr.bodyDone || cr.stopped || cr.inRead || cr.hasByte {
		return
	}
	cr.inRead = true
	go cr.backgroundRead(cr.rctx)
}

// backgroundRead waits for the connection to be readable: a byte is the next
// pipelined request (kept for it); an error means the client went away, which cancels
// the request.
func (cr *connReader) backgroundRead(rctx *reqCtx) {
	n, err := cr.c.rwc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	gone := err != nil && !cr.aborted
	cr.inRead, cr.aborted = false, false
	cr.cond.Broadcast()
	cr.mu.Unlock()
	if gone && rctx != nil {
		rctx.cancel(context.Canceled)
	}
}

// stopWatch ends a background read, if one runs, and lets none start.
func (cr *connReader) stopWatch() {
	cr.mu.Lock()
	cr.stopped = true
	if !cr.inRead {
		cr.mu.Unlock()
		return
	}
	cr.aborted = true
	cr.c.rwc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	cr.mu.Unlock()
	cr.c.rwc.SetReadDeadline(time.Time{})
}

// reqAlloc is what serving one request needs, allocated at once.
type reqAlloc struct {
	ctx  reqCtx
	w    response
	body body
}

// reqCtx is a request's context. Its Done channel is made on first use, and only
// then does the connection start watching for the client going away: most requests
// never ask, and the watch costs a goroutine and two deadline changes (net/http pays
// them on every request). Err reports a cancellation once Done has been asked for,
// or after the handler returned.
type reqCtx struct {
	context.Context // the connection's: values, deadline and cancellation
	c               *conn
	mu              sync.Mutex
	done            chan struct{}
	err             error
	stop            func() bool // ends the watch on the connection's context
}

func (r *reqCtx) Done() <-chan struct{} {
	r.mu.Lock()
	if r.done != nil {
		r.mu.Unlock()
		return r.done
	}
	r.done = make(chan struct{})
	if r.err == nil {
		r.err = r.Context.Err()
	}
	if r.err != nil {
		close(r.done)
		r.mu.Unlock()
		return r.done
	}
	d := r.done
	if r.Context.Done() != nil {
		// ConnContext may hand out a context that ends: the request's ends with it.
		parent := r.Context
		r.stop = context.AfterFunc(parent, func() { r.cancel(parent.Err()) })
	}
	r.mu.Unlock()
	r.c.cr.watch()
	return d
}

func (r *reqCtx) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		return r.Context.Err()
	}
	return r.err
}

func (r *reqCtx) cancel(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	if r.stop != nil {
		r.stop()
	}
}

func (r *reqCtx) String() string { return "http1.requestContext" }
