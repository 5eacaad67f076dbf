package http1

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// pendSize is how much body a response holds back before its headers are out: a
// response that ends within it gets a Content-Length instead of chunks. In chunked
// mode it is the chunk size.
const pendSize = 4 << 10

// response is the http.ResponseWriter of one request. Its framing follows net/http's
// (server.go, chunkWriter.writeHeader), so handlers behave the same on either server.
type response struct {
	c      *conn
	req    *http.Request
	body   *body // nil without a request body
	header http.Header
	snap   http.Header // the headers as of WriteHeader, if the handler touched them since

	status      int
	wroteHeader bool  // the handler set its final status
	committed   bool  // the status line and headers are queued
	wroteBody   bool  // the handler has called Write: no 100 Continue any more
	head        bool  // HEAD: the body is counted, not sent
	cl          int64 // the declared Content-Length, or -1
	written     int64
	chunked     bool
	closeAfter  bool
	handlerDone bool
}

var _ interface {
	http.ResponseWriter
	http.Flusher
	io.ReaderFrom
} = (*response)(nil)

func (w *response) Header() http.Header {
	if w.wroteHeader && !w.committed && w.snap == nil {
		// Changes after WriteHeader must not reach the wire (net/http clones too).
		w.snap = w.header.Clone()
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("http1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader {
		return // superfluous, as in net/http
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.status, w.wroteHeader = code, true
	w.cl = -1
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
			if len(v) > 1 {
				// The first counts, as in net/http; two on the wire would be a framing
				// error (RFC 9112 §6.3).
				w.header["Content-Length"] = v[:1]
			}
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

// writeInformational sends a 1xx response at once, ahead of the final one.
func (w *response) writeInformational(code int) {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := w.header
	if h["Content-Length"] != nil || h["Transfer-Encoding"] != nil {
		// RFC 9110 §8.6: no length on a 1xx; they belong to the final response.
		h = h.Clone()
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
	}
	c.wbuf = appendStatusLine(c.wbuf, code)
	c.wbuf = appendHeader(c.wbuf, h)
	c.wbuf = append(c.wbuf, "\r\n"...)
	c.flush()
	if code == http.StatusContinue && w.body != nil {
		w.body.expectContinue = false
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteBody {
		// A body read after this must not send 100 Continue in the middle of the
		// response; the wire lock orders this against a Continue being written.
		w.c.wmu.Lock()
		w.wroteBody = true
		w.c.wmu.Unlock()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	c := w.c
	if w.head {
		if !w.committed && len(c.pend) < sniffLen {
			// Kept only to sniff a Content-Type, which HEAD reports as GET would.
			c.pend = append(c.pend, p[:min(len(p), sniffLen-len(c.pend))]...)
		}
		w.written += int64(len(p))
		return len(p), nil
	}
	if !w.committed {
		if w.cl < 0 && len(c.pend)+len(p) <= pendSize {
			c.pend = append(c.pend, p...) // perhaps the whole body: wait and see
			w.written += int64(len(p))
			return len(p), nil
		}
		w.commit(sniffStart(c.pend, p))
	}
	w.written += int64(len(p))
	w.send(p)
	if c.werr != nil {
		return 0, c.werr
	}
	return len(p), nil
}

// send queues body bytes after the headers, as a chunk if chunked.
func (w *response) send(p []byte) {
	c := w.c
	if !w.chunked {
		if len(c.pend) > 0 {
			c.write(c.pend)
			c.pend = c.pend[:0]
		}
		c.write(p)
		return
	}
	if len(c.pend)+len(p) <= pendSize {
		c.pend = append(c.pend, p...)
		return
	}
	w.sendChunk(c.pend)
	c.pend = c.pend[:0]
	if len(p) >= pendSize {
		w.sendChunk(p)
	} else {
		c.pend = append(c.pend, p...)
	}
}

// sendChunk queues one chunk (RFC 9112 §7.1).
func (w *response) sendChunk(p []byte) {
	if len(p) == 0 {
		return
	}
	c := w.c
	var hdr [20]byte
	h := strconv.AppendInt(hdr[:0], int64(len(p)), 16)
	h = append(h, '\r', '\n')
	c.write(h)
	c.write(p)
	c.write(crlf)
}

var crlf = []byte("\r\n")

// Flush sends what the handler has written so far.
func (w *response) Flush() {
	w.queuePend()
	w.c.flush()
}

// queuePend commits the response if it is not yet, and queues what Write held back.
func (w *response) queuePend() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	c := w.c
	if !w.committed {
		w.commit(c.pend)
	}
	if w.chunked {
		w.sendChunk(c.pend)
	} else if !w.head && bodyAllowedForStatus(w.status) {
		c.write(c.pend)
	}
	c.pend = c.pend[:0]
}

// ReadFrom sends a file's bytes without copying them through user space when the
// length is declared and the connection is TCP (sendFile): that is how
// http.ServeContent sends a file.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	if !w.committed {
		// As net/http does: the first bytes go through Write, so a source that fails
		// at once leaves the status to the handler (golang.org/issue/5660), a body
		// read here may still send 100 Continue, and the start can be sniffed.
		n0, err := copyVia(w, io.LimitReader(src, sniffLen))
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	if w.c.tcp == nil || w.head || w.cl < 0 || !bodyAllowedForStatus(w.status) {
		n0, err := copyVia(w, src)
		return n + n0, err
	}
	// Committed now, by Write or earlier, and with a declared length nothing is held
	// back: what is queued goes out before the file.
	c := w.c
	c.flush()
	if c.werr != nil {
		return n, c.werr
	}
	remain := w.cl - w.written
	lr, ok := src.(*io.LimitedReader)
	wrapped := !ok || lr.N > remain
	if wrapped {
		lr = &io.LimitedReader{R: src, N: remain}
	}
	n0, err := c.sendFile(lr)
	w.written += n0
	n += n0
	if err != nil {
		c.werr = err
		return n, err
	}
	if wrapped && lr.N == 0 {
		var one [1]byte
		if m, _ := src.Read(one[:]); m > 0 {
			return n, http.ErrContentLength
		}
	}
	return n, nil
}

// sniffLen is how much of a body http.DetectContentType looks at.
const sniffLen = 512

// sniffStart is the body's first bytes: those held back, then p.
func sniffStart(pend, p []byte) []byte {
	switch {
	case len(pend) == 0:
		return p
	case len(pend) >= sniffLen:
		return pend
	}
	b := make([]byte, 0, sniffLen)
	b = append(b, pend...)
	return append(b, p[:min(len(p), sniffLen-len(b))]...)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyVia(w io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w}, src, *bp) // struct: no ReadFrom loop
}

func (w *response) snapOrHeader() http.Header {
	if w.snap != nil {
		return w.snap
	}
	return w.header
}

// commit decides the framing and queues the status line and headers. sniff is the
// start of the body, for a missing Content-Type.
func (w *response) commit(sniff []byte) {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := w.snapOrHeader()
	code := w.status
	var set [4]struct{ k, v string } // headers the server adds
	ns := 0
	add := func(k, v string) { set[ns] = struct{ k, v string }{k, v}; ns++ }

	bodyOK := bodyAllowedForStatus(code)
	if !bodyOK {
		// RFC 9110 §8.6, §15.4.5: no length for 1xx/204; a 304 keeps none of a body's.
		delete(h, "Content-Length")
		if code == http.StatusNotModified {
			delete(h, "Content-Type")
		}
		w.cl = -1
	}
	if w.cl < 0 && w.handlerDone && bodyOK && !(w.head && w.written == 0) {
		w.cl = w.written
		add("Content-Length", strconv.FormatInt(w.written, 10))
	}
	// A Content-Type key with no value asks for none (as in net/http).
	if _, have := h["Content-Type"]; bodyOK && !have && h.Get("Content-Encoding") == "" && len(sniff) > 0 {
		add("Content-Type", http.DetectContentType(sniff))
	}
	delete(h, "Transfer-Encoding") // the server frames the body
	switch {
	case w.head || !bodyOK || w.cl >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		add("Transfer-Encoding", "chunked")
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the close ends the body
	}
	if w.body != nil && w.body.unfinished() && w.body.tooBigToDrain() {
		w.closeAfter = true
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") || c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	delete(h, "Connection")
	switch {
	case w.closeAfter:
		add("Connection", "close")
	case !w.req.ProtoAtLeast(1, 1):
		add("Connection", "keep-alive") // RFC 9112 §9.3: only said keep-alive 1.0 clients get here
	}

	c.wbuf = appendStatusLine(c.wbuf, code)
	c.wbuf = appendHeader(c.wbuf, h)
	for _, kv := range set[:ns] {
		c.wbuf = appendField(c.wbuf, kv.k, kv.v)
	}
	if _, ok := h["Date"]; !ok {
		c.wbuf = appendField(c.wbuf, "Date", dateValue())
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
	w.committed = true
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	w.handlerDone = true // before the commit: a body that ends here gets a length
	w.queuePend()
	switch {
	case w.chunked:
		w.c.write([]byte("0\r\n\r\n"))
	case !w.head && bodyAllowedForStatus(w.status) && w.cl >= 0 && w.written != w.cl:
		w.closeAfter = true // the client counts bytes we did not send
	}
}

func bodyAllowedForStatus(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// appendHeader appends h's fields; like net/http it drops invalid names and turns
// line breaks in values into spaces, so no value can start a header of its own.
func appendHeader(b []byte, h http.Header) []byte {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			v = strings.TrimSpace(v)
			for i := 0; i < len(v); i++ {
				ch := v[i]
				if ch == '\r' || ch == '\n' || ch == 0 {
					ch = ' '
				}
				b = append(b, ch)
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// appendField appends one header field the server writes itself.
func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// The Date header changes once a second; format it once a second.
type dateCache struct {
	sec int64
	v   string
}

var cachedDate atomic.Pointer[dateCache]

func dateValue() string {
	now := time.Now()
	sec := now.Unix()
	d := cachedDate.Load()
	if d == nil || d.sec != sec {
		d = &dateCache{sec: sec, v: now.UTC().Format(http.TimeFormat)}
		cachedDate.Store(d)
	}
	return d.v
}
