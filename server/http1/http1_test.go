package http1

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Every test here talks to a real server on 127.0.0.1 with raw bytes, because the
// wire (framing, Connection, 100 Continue, what is left unread) is what this
// package decides; a http.Client would hide most of it.

// lockedBuffer collects the server's log lines from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve runs s on a new loopback listener until the test ends and returns its
// address; Serve must then end with http.ErrServerClosed.
func serve(tb testing.TB, s *Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	tb.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// serveStd runs net/http's server with the same handler and header limit, the
// reference http1 mirrors.
func serveStd(tb testing.TB, h http.Handler, maxHeaderBytes int) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h, MaxHeaderBytes: maxHeaderBytes, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// client is one raw connection. A deadline bounds all of it, so a server that
// never answers fails the test instead of hanging it.
type client struct {
	t  testing.TB
	c  *net.TCPConn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c.(*net.TCPConn), br: bufio.NewReader(c)}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatalf("writing the request: %v", err)
	}
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	body string
}

// read reads the next response (a 1xx one too) to a request with the given method.
func (cl *client) read(method string) (reply, error) {
	resp, err := http.ReadResponse(cl.br, &http.Request{Method: method})
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp, string(b)}, err
}

func (cl *client) mustRead(method string) reply {
	cl.t.Helper()
	r, err := cl.read(method)
	if err != nil {
		cl.t.Fatalf("reading the response to %s: %v", method, err)
	}
	return r
}

// get sends a GET for path and returns its response.
func (cl *client) get(path string) reply {
	cl.t.Helper()
	cl.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
	return cl.mustRead("GET")
}

// expectClosed checks that the server ends the connection: the next read gets no
// data, and an end of file or a reset rather than the deadline.
func (cl *client) expectClosed() {
	cl.t.Helper()
	var buf [256]byte
	n, err := cl.br.Read(buf[:])
	var ne net.Error
	switch {
	case n > 0:
		cl.t.Fatalf("got %q, want the connection closed", buf[:n])
	case errors.As(err, &ne) && ne.Timeout():
		cl.t.Fatal("the connection is still open, want it closed")
	case err == nil:
		cl.t.Fatal("read returned nothing and no error")
	}
}

func hasToken(h http.Header, name, token string) bool {
	return httpguts.HeaderValuesContainsToken(h[name], token)
}

// conformanceHandler is what both servers run in TestConformance; the path picks
// the behaviour.
func conformanceHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/small": // no Content-Length: the server computes it
		io.WriteString(w, "hello, world\n")
	case "/large": // more than either server holds back before committing
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), 320))
	case "/cl":
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello world")
	case "/204":
		w.Header().Set("Content-Length", "5") // RFC 9110 §8.6: never on a 204
		w.WriteHeader(http.StatusNoContent)
	case "/304":
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusNotModified)
	case "/empty":
	case "/echo": // through the response's ReadFrom
		io.Copy(w, r.Body)
	case "/readall": // the whole body before the response: net/http discards what
		// is unread once its headers go out, so /echo differs past 512 bytes
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	case "/copy-fail": // the source fails before its first byte: the status is
		// still the handler's to choose (net/http's ReadFrom, golang.org/issue/5660)
		if _, err := io.Copy(w, iotest.ErrReader(errors.New("backend failed"))); err != nil {
			http.Error(w, "backend failed", http.StatusInternalServerError)
		}
	case "/sniff":
		io.WriteString(w, "<html><body>hi</body></html>")
	case "/sniff-split": // the start of the body is held back when a large write follows
		io.WriteString(w, "<html><body>")
		w.Write(bytes.Repeat([]byte("a"), 5000))
	case "/nosniff": // ResponseWriter.Header: a nil value suppresses the automatic header
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html><body>hi</body></html>")
	case "/host": // http.ReadRequest promotes Host out of the header map
		fmt.Fprintf(w, "%q %q", r.Host, r.Header["Host"])
	default:
		http.NotFound(w, r)
	}
}

// outcome is what a client can tell of one exchange.
type outcome struct {
	status   int
	interim  int // 1xx responses before the final one
	body     string
	length   string // the Content-Length field as received
	chunked  bool
	ctype    string
	closes   bool // the response says the connection ends after it
	reusable bool // a second request on the connection is answered
}

// String shortens the body, which can be kilobytes.
func (o outcome) String() string {
	body := o.body
	if len(body) > 40 {
		body = fmt.Sprintf("%.40s... (%d bytes)", body, len(body))
	}
	o.body = body
	type plain outcome // no String method: no recursion
	return fmt.Sprintf("%+v", plain(o))
}

// exchange sends raw on a new connection to addr, reads the answer, then tries a
// second request on the same connection.
func exchange(addr, raw string) (outcome, error) {
	var o outcome
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return o, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	wrote := make(chan struct{})
	go func() { // the server may answer before it has read all of it
		defer close(wrote)
		io.WriteString(c, raw)
	}()
	line, _, _ := strings.Cut(raw, "\r\n")
	method, _, _ := strings.Cut(line, " ")
	br := bufio.NewReader(c)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return o, fmt.Errorf("reading the response: %w", err)
		}
		if resp.StatusCode >= 200 {
			break
		}
		o.interim++
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return o, fmt.Errorf("reading the body: %w", err)
	}
	o.status, o.body = resp.StatusCode, string(b)
	o.length = resp.Header.Get("Content-Length")
	o.chunked = len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	o.ctype = resp.Header.Get("Content-Type")
	// RFC 9112 §9.3: an HTTP/1.0 client's connection persists only if the response
	// says keep-alive; net/http leaves Connection out on other 1.0 answers, http1
	// says close: the same thing.
	o.closes = resp.Close || strings.HasSuffix(line, "HTTP/1.0") && !hasToken(resp.Header, "Connection", "keep-alive")

	<-wrote
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if r2, err := http.ReadResponse(br, nil); err == nil {
		b2, err := io.ReadAll(r2.Body)
		o.reusable = err == nil && r2.StatusCode == http.StatusOK && string(b2) == "hello, world\n"
	}
	return o, nil
}

// TestConformance sends the same bytes to an http1.Server and to net/http's server
// running the same handler, and compares what a client can observe.
func TestConformance(t *testing.T) {
	const maxHeader = 1 << 10
	h := http.HandlerFunc(conformanceHandler)
	h1 := serve(t, &Server{Handler: h, MaxHeaderBytes: maxHeader})
	std := serveStd(t, h, maxHeader)
	big := strings.Repeat("a", 16<<10)

	tests := []struct {
		name string
		req  string
		want int // net/http's status, and http1's unless h1Status is set
		// serverAnswer: the server answered on its own; http1 renders its own bodies
		// (Server.ErrorBody), so body, length and type are not compared.
		serverAnswer bool
		skipLength   bool // the length differs deliberately (see the case)
		h1Status     int  // http1's status where it differs deliberately
	}{
		{name: "small body gets a Content-Length", req: "GET /small HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "large body is chunked on HTTP/1.1", req: "GET /large HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "large body is close-delimited on HTTP/1.0", req: "GET /large HTTP/1.0\r\n\r\n", want: 200},
		{name: "large body on HTTP/1.0 keep-alive still closes", req: "GET /large HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: 200},
		{name: "HTTP/1.0 without keep-alive closes", req: "GET /small HTTP/1.0\r\n\r\n", want: 200},
		{name: "HTTP/1.0 keep-alive persists [RFC9112 9.3]", req: "GET /small HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: 200},
		{name: "HTTP/1.1 Connection close", req: "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", want: 200},
		{name: "handler Content-Length", req: "GET /cl HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "HEAD small [RFC9110 9.3.2]", req: "HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		// net/http stops counting HEAD bytes past its 2 KiB buffer and sends no length;
		// http1 counts them all and sends the length the GET would have.
		{name: "HEAD large", req: "HEAD /large HTTP/1.1\r\nHost: x\r\n\r\n", want: 200, skipLength: true},
		{name: "HEAD with handler Content-Length", req: "HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "204 drops Content-Length [RFC9110 8.6]", req: "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", want: 204},
		{name: "304 drops length and type [RFC9110 15.4.5]", req: "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n", want: 304},
		{name: "handler writes nothing", req: "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "HTTP/1.0 handler writes nothing", req: "GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: 200},
		{name: "echo Content-Length body", req: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", want: 200},
		{name: "echo chunked body", req: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", want: 200},
		{name: "echo HTTP/1.0 body", req: "POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", want: 200},
		{name: "large body read whole, then echoed chunked", req: "POST /readall HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n" + strings.Repeat("z", 6000), want: 200},
		{name: "malformed chunked body closes", req: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", want: 200},
		{name: "sniffed Content-Type", req: "GET /sniff HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "sniffed Content-Type from a held-back start", req: "GET /sniff-split HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "nil Content-Type suppresses sniffing", req: "GET /nosniff HTTP/1.1\r\nHost: x\r\n\r\n", want: 200},
		{name: "Host promoted out of the header", req: "GET /host HTTP/1.1\r\nHost: example.org\r\n\r\n", want: 200},
		{name: "io.Copy from a failing source", req: "GET /copy-fail HTTP/1.1\r\nHost: x\r\n\r\n", want: 500},
		{name: "Expect 100-continue, io.Copy of the body sent at once", req: "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", want: 200},
		{name: "Expect 100-continue without a body", req: "GET /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", want: 200},
		{name: "missing Host [RFC9112 3.2]", req: "GET /small HTTP/1.1\r\n\r\n", want: 400, serverAnswer: true},
		// net/http accepts an empty Host (valid for an origin-form target), but
		// http.ReadRequest drops the field, so http1 cannot tell it from a missing one
		// and refuses both.
		{name: "empty Host", req: "GET /small HTTP/1.1\r\nHost:\r\n\r\n", want: 200, h1Status: 400},
		// RFC 9112 §3.2 wants a 400 for any 1.1 request without Host, but
		// http.ReadRequest fills Host from the absolute-form target and drops the
		// field, so http1 cannot see that it was missing and answers.
		{name: "absolute-form without Host", req: "GET http://x/small HTTP/1.1\r\n\r\n", want: 400, h1Status: 200},
		{name: "absolute-form overrides Host", req: "GET http://a.example/host HTTP/1.1\r\nHost: b.example\r\n\r\n", want: 200},
		{name: "malformed Host", req: "GET /small HTTP/1.1\r\nHost: a b\r\n\r\n", want: 400, serverAnswer: true},
		{name: "two Host fields", req: "GET /small HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", want: 400, serverAnswer: true},
		{name: "header name with a space", req: "GET /small HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", want: 400, serverAnswer: true},
		{name: "header value with a control byte", req: "GET /small HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", want: 400, serverAnswer: true},
		{name: "malformed request line", req: "GARBAGE\r\n\r\n", want: 400, serverAnswer: true},
		{name: "negative Content-Length", req: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", want: 400, serverAnswer: true},
		{name: "headers too large", req: "GET /small HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", want: 431, serverAnswer: true},
		{name: "Transfer-Encoding gzip [RFC9112 6.1]", req: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", want: 501, serverAnswer: true},
		{name: "two Transfer-Encoding fields", req: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: 501, serverAnswer: true},
		// Go issue 12785: Transfer-Encoding on an HTTP/1.0 request is ignored.
		{name: "Transfer-Encoding on HTTP/1.0 is ignored", req: "POST /echo HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", want: 200},
		// RFC 9112 §6.1: chunked wins over Content-Length. (It also says to close the
		// connection after; neither server does, and the test records that they agree.)
		{name: "Content-Length and chunked", req: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: 200},
		{name: "two different Content-Lengths", req: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", want: 400, serverAnswer: true},
		{name: "two equal Content-Lengths", req: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", want: 200},
		{name: "HTTP/2.0 request line", req: "GET /small HTTP/2.0\r\nHost: x\r\n\r\n", want: 505, serverAnswer: true},
		{name: "Expect something-else with a body [RFC9110 10.1.1]", req: "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\nhello", want: 417, serverAnswer: true},
		{name: "Expect something-else without a body", req: "GET /small HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n", want: 417, serverAnswer: true},
		// RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
		{name: "Expect 100-continue on HTTP/1.0 is ignored", req: "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			so, err := exchange(std, tc.req)
			if err != nil {
				t.Fatalf("net/http: %v", err)
			}
			if so.status != tc.want {
				t.Fatalf("net/http answered %d, the table says %d: %v", so.status, tc.want, so)
			}
			ho, err := exchange(h1, tc.req)
			if err != nil {
				t.Fatalf("http1: %v (net/http answered %v)", err, so)
			}
			if tc.h1Status != 0 {
				if ho.status != tc.h1Status {
					t.Errorf("http1 answered %d, want %d: %v", ho.status, tc.h1Status, ho)
				}
				if ho.status >= 400 && (!ho.closes || ho.reusable) {
					t.Errorf("http1 kept the connection after its error answer: %v", ho)
				}
				return
			}
			if tc.serverAnswer {
				so.body, so.length, so.ctype = "", "", ""
				ho.body, ho.length, ho.ctype = "", "", ""
			}
			if tc.skipLength {
				so.length, ho.length = "", ""
			}
			if ho != so {
				t.Errorf("http1 and net/http differ\nhttp1:    %v\nnet/http: %v", ho, so)
			}
		})
	}
}

// TestErrorBody checks that the server's own answers go through ErrorBody, with a
// matching length, and close the connection.
func TestErrorBody(t *testing.T) {
	s := &Server{
		Handler:        http.HandlerFunc(conformanceHandler),
		MaxHeaderBytes: 1 << 10,
		ErrorBody: func(status int, reason string) (string, []byte) {
			return "application/x-test", []byte(strconv.Itoa(status) + " " + reason)
		},
	}
	addr := serve(t, s)
	tests := []struct {
		name, req string
		want      int
	}{
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"malformed", "GARBAGE\r\n\r\n", 400},
		{"version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"transfer encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"expectation", "POST / HTTP/1.1\r\nHost: x\r\nExpect: nope\r\nContent-Length: 1\r\n\r\nx", 417},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, addr)
			cl.send(tc.req)
			r := cl.mustRead("GET")
			if r.StatusCode != tc.want || r.Header.Get("Content-Type") != "application/x-test" || !strings.HasPrefix(r.body, strconv.Itoa(tc.want)+" ") {
				t.Errorf("got %d %q %q, want %d from ErrorBody", r.StatusCode, r.Header.Get("Content-Type"), r.body, tc.want)
			}
			if r.ContentLength != int64(len(r.body)) || !r.Close {
				t.Errorf("Content-Length %d for %d bytes, close %v", r.ContentLength, len(r.body), r.Close)
			}
			cl.expectClosed()
		})
	}
}

// echoHandler answers with the method, path and body of the request.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

// TestPipelining writes several requests at once: each is answered, in order, with
// nothing lost between them (a body left unread is drained, not parsed).
func TestPipelining(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ignore": // leaves its body for the server to drain
			io.WriteString(w, "ignored")
		default:
			echoHandler(w, r)
		}
	})})
	reqs := []struct{ method, raw, want string }{
		{"GET", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a "},
		{"POST", "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST /b hello"},
		{"POST", "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("G", 2000), "ignored"},
		{"HEAD", "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"POST", "POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /d abc"},
		{"GET", "GET /e HTTP/1.1\r\nHost: x\r\n\r\n", "GET /e "},
	}
	for _, n := range []int{2, 3, len(reqs)} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			cl := dial(t, addr)
			var all strings.Builder
			for _, r := range reqs[:n] {
				all.WriteString(r.raw)
			}
			cl.send(all.String())
			for i, r := range reqs[:n] {
				got := cl.mustRead(r.method)
				if got.StatusCode != 200 || got.body != r.want {
					t.Errorf("response %d: %d %q, want 200 %q", i, got.StatusCode, got.body, r.want)
				}
			}
		})
	}

	// A request whose handler waits on Done while the next one is already sent:
	// the watch must not take the next request for the client going away, nor lose
	// its first byte.
	t.Run("watch with a pipelined request", func(t *testing.T) {
		entered := make(chan struct{})
		release := make(chan struct{})
		errc := make(chan error, 1)
		addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				done := r.Context().Done()
				close(entered)
				select {
				case <-release:
					errc <- r.Context().Err()
				case <-done:
					errc <- fmt.Errorf("cancelled while the client waits: %v", r.Context().Err())
				}
			}
			echoHandler(w, r)
		})})
		cl := dial(t, addr)
		cl.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		cl.send("POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
		// Give the watch a moment to read the next request's first byte; the test
		// checks the same either way.
		time.Sleep(20 * time.Millisecond)
		close(release)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if r := cl.mustRead("GET"); r.body != "GET /hold " {
			t.Errorf("first response %q", r.body)
		}
		if r := cl.mustRead("POST"); r.body != "POST /next ok" {
			t.Errorf("second response %q, want %q", r.body, "POST /next ok")
		}
	})
}

// TestKeepAlive sends many requests on one connection: all are served by it.
func TestKeepAlive(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})})
	cl := dial(t, addr)
	for i := range 100 {
		r := cl.get("/" + strconv.Itoa(i))
		if r.body != cl.c.LocalAddr().String() || r.Close {
			t.Fatalf("request %d: %q close=%v, want %q on a kept connection", i, r.body, r.Close, cl.c.LocalAddr())
		}
	}
}

// TestTimeouts checks that a silent connection is closed, without an answer, by
// the timeout that applies at that point.
func TestTimeouts(t *testing.T) {
	const d = 150 * time.Millisecond
	tests := []struct {
		name      string
		rht, idle time.Duration // the server's ReadHeaderTimeout and IdleTimeout
		first     bool          // send one full request first
		partial   string        // then send this and go silent
	}{
		{name: "ReadHeaderTimeout before the first byte", rht: d},
		{name: "ReadHeaderTimeout within the headers", rht: d, partial: "GET / HTTP/1.1\r\nHost: x\r\n"},
		// Line-aligned: cut mid-line, bufio.ReadLine hands the parser the partial
		// line and both servers answer 400 to it.
		{name: "ReadHeaderTimeout within later headers", rht: d, idle: time.Minute, first: true, partial: "GET / HTTP/1.1\r\n"},
		{name: "IdleTimeout after a request", idle: d, first: true},
		{name: "IdleTimeout zero uses ReadHeaderTimeout", rht: d, first: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: tc.rht, IdleTimeout: tc.idle}
			cl := dial(t, serve(t, s))
			if tc.first {
				cl.get("/")
				// At once: the connection is kept for a prompt next request.
				if r := cl.get("/again"); r.body != "GET /again " {
					t.Fatalf("second request: %q", r.body)
				}
			}
			start := time.Now()
			if tc.partial != "" {
				cl.send(tc.partial)
			}
			cl.expectClosed()
			// A lower bound only: the server must not close before its timeout.
			if el := time.Since(start); el < d/4 {
				t.Errorf("closed after %v, before the %v timeout", el, d)
			}
		})
	}
}

// TestExpectContinue checks that "100 Continue" goes out only when the handler reads
// the body (RFC 9110 §10.1.1), and that a connection whose body was never asked for
// is closed after the answer.
func TestExpectContinue(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reject":
			w.WriteHeader(http.StatusPreconditionFailed)
		case "/copy": // io.Copy goes through the response's ReadFrom
			io.Copy(w, r.Body)
		default:
			echoHandler(w, r)
		}
	})})
	tests := []struct{ path, framing, body, want string }{
		{"/read", "Content-Length: 5", "hello", "PUT /read hello"},
		{"/read", "Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n", "PUT /read hello"},
		{"/copy", "Content-Length: 5", "hello", "hello"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.framing, func(t *testing.T) {
			cl := dial(t, addr)
			cl.send("PUT " + tc.path + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" + tc.framing + "\r\n\r\n")
			if r := cl.mustRead("PUT"); r.StatusCode != http.StatusContinue {
				t.Fatalf("first response %d %q, want 100", r.StatusCode, r.body)
			}
			cl.send(tc.body)
			if r := cl.mustRead("PUT"); r.StatusCode != 200 || r.body != tc.want || r.Close {
				t.Fatalf("%d %q close=%v", r.StatusCode, r.body, r.Close)
			}
			if r := cl.get("/next"); r.body != "GET /next " {
				t.Errorf("next request on the connection: %q", r.body)
			}
		})
	}
	t.Run("not read", func(t *testing.T) {
		cl := dial(t, addr)
		cl.send("PUT /reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		r := cl.mustRead("PUT")
		if r.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("first response %d, want 412 without a 100 before it", r.StatusCode)
		}
		// The client never sent its body: the next bytes could be either, so close.
		if !r.Close {
			t.Error("no Connection: close")
		}
		cl.expectClosed()
	})
}

// TestUnreadBody checks what happens to a request body the handler did not read:
// up to 256 KiB left with a known length is drained and the connection kept (as
// net/http does); more, or an unknown length, closes it.
func TestUnreadBody(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("read"), 10, 64)
		got, _ := io.CopyN(io.Discard, r.Body, n)
		fmt.Fprintf(w, "read %d", got)
	})})
	tests := []struct {
		name      string
		size      int
		read      int
		chunked   bool
		wantClose bool
	}{
		{name: "small", size: 10 << 10},
		{name: "at the limit", size: maxDrain},
		{name: "just over the limit", size: maxDrain + 1, wantClose: true},
		{name: "large", size: 1 << 20, wantClose: true},
		{name: "large, partly read to under the limit", size: 300 << 10, read: 100 << 10},
		// Deliberate, unlike net/http (which drains before it writes the headers):
		// http1 decides Connection when it commits, and a chunked body's rest has no
		// known size then.
		{name: "small chunked", size: 1 << 10, chunked: true, wantClose: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, addr)
			body := bytes.Repeat([]byte("b"), tc.size)
			var req bytes.Buffer
			fmt.Fprintf(&req, "POST /?read=%d HTTP/1.1\r\nHost: x\r\n", tc.read)
			if tc.chunked {
				fmt.Fprintf(&req, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			} else {
				fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n%s", len(body), body)
			}
			wrote := make(chan error, 1)
			go func() { _, err := cl.c.Write(req.Bytes()); wrote <- err }()
			r := cl.mustRead("POST")
			if r.body != fmt.Sprintf("read %d", tc.read) || r.Close != tc.wantClose {
				t.Fatalf("got %q close=%v, want read %d close=%v", r.body, r.Close, tc.read, tc.wantClose)
			}
			if tc.wantClose {
				cl.expectClosed()
				return
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if r := cl.get("/?read=0"); r.body != "read 0" {
				t.Errorf("next request: %q", r.body)
			}
		})
	}
}

// TestContextCancelOnClose checks that a handler waiting on its context's Done learns
// that the client went away, whether the request had a body or not.
func TestContextCancelOnClose(t *testing.T) {
	tests := []struct {
		name string
		req  string
		// doneFirst asks for Done before reading the body: the watch must then wait
		// for the body's end.
		doneFirst bool
	}{
		{name: "no body", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "after reading the body", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "after reading a chunked body", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "Done asked before the body is read", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", doneFirst: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			waiting := make(chan struct{})
			result := make(chan error, 1)
			addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var done <-chan struct{}
				if tc.doneFirst {
					done = r.Context().Done()
				}
				if b, _ := io.ReadAll(r.Body); r.Method == "POST" && string(b) != "hello" {
					result <- fmt.Errorf("body %q", b)
					return
				}
				if done == nil {
					done = r.Context().Done()
				}
				close(waiting)
				result <- awaitCancel(r, done, 5*time.Second, "not cancelled after the client closed")
			})})
			cl := dial(t, addr)
			cl.send(tc.req)
			<-waiting
			cl.c.Close()
			if err := <-result; !errors.Is(err, context.Canceled) {
				t.Errorf("handler saw %v, want context.Canceled", err)
			}
		})
	}
}

// awaitCancel waits for done, r's context's Done, and returns the context's error, or
// an error saying why it should have ended if it does not within d.
func awaitCancel(r *http.Request, done <-chan struct{}, d time.Duration, why string) error {
	select {
	case <-done:
		return r.Context().Err()
	case <-time.After(d):
		return errors.New(why)
	}
}

// TestContextUnwatched checks a handler that never asks for Done: it finishes
// normally when the client has gone, its context reports nothing while it runs
// (nothing watched), and the server carries on.
func TestContextUnwatched(t *testing.T) {
	entered := make(chan struct{})
	proceed := make(chan struct{})
	finished := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		close(entered)
		<-proceed
		// Documented (reqCtx): Err reports a cancellation once Done has been asked
		// for; net/http, which always watches, would say Canceled here.
		err := r.Context().Err()
		for range 64 { // writes to a closed connection fail quietly
			w.Write(make([]byte, 32<<10))
		}
		finished <- err
	})})
	cl := dial(t, addr)
	cl.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	cl.c.Close()
	close(proceed)
	if err := <-finished; err != nil {
		t.Errorf("Err while running, unwatched: %v, want nil", err)
	}
	if r := dial(t, addr).get("/ok"); r.body != "ok" {
		t.Errorf("next connection: %q", r.body)
	}
}

// TestContextAfterHandler checks that a request's context is cancelled once its
// handler has returned, for a goroutine that kept it, whether that goroutine asked
// for Done before or after.
func TestContextAfterHandler(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	asked := make(chan (<-chan struct{}), 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		asked <- ctx.Done()
		ctxs <- ctx
		io.WriteString(w, "ok")
	})})
	cl := dial(t, addr)
	cl.get("/")
	ctx, done := <-ctxs, <-asked
	// The cancel precedes the response's write, so it is visible once the response is.
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err after the response: %v, want context.Canceled", err)
	}
	for name, ch := range map[string]<-chan struct{}{"asked during the handler": done, "asked after": ctx.Done()} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Errorf("Done %s is not closed", name)
		}
	}
	// The connection is unharmed by the watch the handler started.
	if r := cl.get("/"); r.body != "ok" {
		t.Errorf("next request: %q", r.body)
	}
}

type connKey struct{}

// TestConnContext checks that the requests' contexts derive from ConnContext's:
// its values are seen, and its cancellation reaches a handler waiting on Done, as a
// derived context must (and as net/http's request contexts do).
func TestConnContext(t *testing.T) {
	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	waiting := make(chan struct{})
	result := make(chan error, 1)
	addr := serve(t, &Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(connCtx, connKey{}, c.RemoteAddr().String())
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v, _ := r.Context().Value(connKey{}).(string); v != r.RemoteAddr {
				result <- fmt.Errorf("value %q, want %q", v, r.RemoteAddr)
				return
			}
			done := r.Context().Done()
			close(waiting)
			result <- awaitCancel(r, done, 2*time.Second, "the connection's context was cancelled, the request's was not")
		}),
	})
	cl := dial(t, addr)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-waiting:
	case err := <-result:
		t.Fatal(err)
	}
	cancelConn()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Error(err)
	}
}

// TestHeaderSanitising checks that a handler's header values cannot start a header
// of their own and that invalid names never reach the wire, as in net/http.
func TestHeaderSanitising(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Split", "a\r\nX-Injected: 1")
		h.Set("X-Lf", "b\nX-Injected2: 2")
		h["X-Nul"] = []string{"c\x00d"}
		h["Bad Name"] = []string{"v"}
		h["X-Colon:Name"] = []string{"v"}
		h["X-Crlf\r\nX-Injected3"] = []string{"v"}
		io.WriteString(w, "ok")
	})})
	cl := dial(t, addr)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	var raw bytes.Buffer
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(cl.br, &raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(raw.String(), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, _, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) || strings.HasPrefix(name, "X-Injected") || strings.HasPrefix(name, "Bad") {
			t.Errorf("header line %q", line)
		}
	}
	for k, want := range map[string]string{"X-Split": "a  X-Injected: 1", "X-Lf": "b X-Injected2: 2", "X-Nul": "c d"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// TestResponseWriter checks the ResponseWriter contract shared with net/http:
// 1xx answers go ahead of the final one, headers are fixed at WriteHeader, and
// writes past the declared length or on a bodiless status fail.
func TestResponseWriter(t *testing.T) {
	errs := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.URL.Path {
		case "/early-hints":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "ok")
		case "/snapshot": // changes after WriteHeader must not reach the wire
			w.Header().Set("X-A", "1")
			w.WriteHeader(http.StatusCreated)
			w.Header().Set("X-A", "2")
			w.Header().Set("X-B", "b")
			io.WriteString(w, "ok")
		case "/too-long":
			w.Header().Set("Content-Length", "2")
			if _, err = io.WriteString(w, "abc"); errors.Is(err, http.ErrContentLength) {
				_, err = io.WriteString(w, "ab")
			} else {
				err = fmt.Errorf("writing past Content-Length: %v", err)
			}
		case "/no-body":
			w.WriteHeader(http.StatusNoContent)
			if _, err = io.WriteString(w, "x"); errors.Is(err, http.ErrBodyNotAllowed) {
				err = nil
			} else {
				err = fmt.Errorf("writing a 204 body: %v", err)
			}
		case "/bad-length": // an invalid declared length is dropped and computed instead
			w.Header().Set("Content-Length", "five")
			io.WriteString(w, "hello")
		case "/code":
			w.WriteHeader(599)
		}
		errs <- err
	})})
	tests := []struct {
		path   string
		check  func(r reply) bool
		status int
	}{
		{"/early-hints", func(r reply) bool { return r.Header.Get("Link") == "" && r.body == "ok" }, 200},
		{"/snapshot", func(r reply) bool { return r.Header.Get("X-A") == "1" && r.Header.Get("X-B") == "" }, 201},
		{"/too-long", func(r reply) bool { return r.body == "ab" && r.ContentLength == 2 }, 200},
		{"/no-body", func(r reply) bool { return r.body == "" && r.Header.Get("Content-Length") == "" }, 204},
		{"/bad-length", func(r reply) bool { return r.body == "hello" && r.ContentLength == 5 }, 200},
		{"/code", func(r reply) bool { return r.Status == "599 status code 599" }, 599},
	}
	cl := dial(t, addr)
	for _, tc := range tests {
		cl.send("GET " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		r := cl.mustRead("GET")
		if tc.path == "/early-hints" {
			if r.StatusCode != http.StatusEarlyHints || r.Header.Get("Link") == "" {
				t.Errorf("%s: first response %d %v, want 103 with Link", tc.path, r.StatusCode, r.Header)
			}
			r = cl.mustRead("GET")
		}
		if err := <-errs; err != nil {
			t.Errorf("%s: %v", tc.path, err)
		}
		if r.StatusCode != tc.status || !tc.check(r) {
			t.Errorf("%s: %d %v %q", tc.path, r.StatusCode, r.Header, r.body)
		}
	}
}

// TestReadFrom checks the sendfile path and its fallbacks: http.ServeContent with
// whole files and ranges, and io.Copy or ReadFrom with a declared length, all give
// the exact bytes.
func TestReadFrom(t *testing.T) {
	data := make([]byte, 9<<20+17) // windows of a mapping: two whole, one partial
	rand.NewChaCha8([32]byte{1}).Read(data)
	name := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	handlerErr := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(name)
		if err != nil {
			handlerErr <- err
			return
		}
		defer f.Close()
		h := w.Header()
		switch r.URL.Path {
		case "/serve":
			http.ServeContent(w, r, "f.bin", time.Unix(1e9, 0), f)
		case "/copy": // io.Copy through the file's WriteTo, then our ReadFrom
			h.Set("Content-Type", "application/x-test")
			h.Set("Content-Length", strconv.FormatInt(size, 10))
			_, err = io.Copy(w, f)
		case "/copy-untyped": // no type: the body is sniffed, so no sendfile
			h.Set("Content-Length", strconv.FormatInt(size, 10))
			_, err = io.Copy(w, f)
		case "/sendfile": // an *os.File straight to ReadFrom: sendfile(2)
			h.Set("Content-Type", "application/x-test")
			h.Set("Content-Length", strconv.FormatInt(size, 10))
			_, err = w.(io.ReaderFrom).ReadFrom(f)
		case "/short-length": // the file is longer than declared
			h.Set("Content-Type", "application/x-test")
			h.Set("Content-Length", strconv.FormatInt(size-10, 10))
			if _, err = w.(io.ReaderFrom).ReadFrom(f); errors.Is(err, http.ErrContentLength) {
				err = nil
			} else {
				err = fmt.Errorf("ReadFrom with a longer source: %v, want ErrContentLength", err)
			}
		case "/long-length": // the file ends early: the client must see it cut short
			h.Set("Content-Type", "application/x-test")
			h.Set("Content-Length", strconv.FormatInt(size+10, 10))
			_, err = w.(io.ReaderFrom).ReadFrom(f)
		}
		handlerErr <- err
	})})
	tests := []struct {
		name, path, rng, method string
		status                  int
		want                    []byte
		ctype                   string
	}{
		{name: "ServeContent whole", path: "/serve", status: 200, want: data},
		{name: "ServeContent range", path: "/serve", rng: "bytes=1000-300999", status: 206, want: data[1000:301000]},
		{name: "ServeContent suffix range", path: "/serve", rng: "bytes=-5000", status: 206, want: data[size-5000:]},
		{name: "ServeContent open range", path: "/serve", rng: "bytes=1048000-", status: 206, want: data[1048000:]},
		// Mapped windows start on a page: a range that starts inside one, crosses a
		// window's end and ends inside a page.
		{name: "ServeContent unaligned range", path: "/serve", rng: "bytes=4095-8392710", status: 206, want: data[4095:8392711]},
		{name: "ServeContent range below the mapping size", path: "/serve", rng: "bytes=7-700006", status: 206, want: data[7:700007]},
		{name: "ServeContent HEAD", path: "/serve", method: "HEAD", status: 200, want: []byte{}},
		{name: "io.Copy with a length", path: "/copy", status: 200, want: data, ctype: "application/x-test"},
		{name: "io.Copy untyped", path: "/copy-untyped", status: 200, want: data, ctype: "application/octet-stream"},
		{name: "ReadFrom a file", path: "/sendfile", status: 200, want: data, ctype: "application/x-test"},
		{name: "ReadFrom a longer file", path: "/short-length", status: 200, want: data[:size-10]},
	}
	cl := dial(t, addr)
	for _, tc := range tests {
		method := cmp.Or(tc.method, "GET")
		req := method + " " + tc.path + " HTTP/1.1\r\nHost: x\r\n"
		if tc.rng != "" {
			req += "Range: " + tc.rng + "\r\n"
		}
		cl.send(req + "\r\n")
		r := cl.mustRead(method)
		if err := <-handlerErr; err != nil {
			t.Errorf("%s: handler: %v", tc.name, err)
		}
		if r.StatusCode != tc.status || r.body != string(tc.want) {
			t.Errorf("%s: %d, %d bytes (want %d %d bytes); equal prefix %d", tc.name, r.StatusCode, len(r.body), tc.status, len(tc.want), commonPrefix(r.body, tc.want))
		}
		if method == "HEAD" && r.ContentLength != size {
			t.Errorf("%s: Content-Length %d, want %d", tc.name, r.ContentLength, size)
		}
		if tc.ctype != "" && r.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, r.Header.Get("Content-Type"), tc.ctype)
		}
		if r.Close {
			t.Errorf("%s: the connection closes", tc.name)
		}
	}

	t.Run("ServeContent multipart ranges", func(t *testing.T) {
		cl.send("GET /serve HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99,500000-500099\r\n\r\n")
		r := cl.mustRead("GET")
		<-handlerErr
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if r.StatusCode != 206 || err != nil || mt != "multipart/byteranges" {
			t.Fatalf("%d %q %v", r.StatusCode, r.Header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(strings.NewReader(r.body), params["boundary"])
		for _, want := range [][]byte{data[:100], data[500000:500100]} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(p); !bytes.Equal(got, want) {
				t.Errorf("part %s: wrong bytes", p.Header.Get("Content-Range"))
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("after the parts: %v", err)
		}
	})

	t.Run("file shorter than its length", func(t *testing.T) {
		cl.send("GET /long-length HTTP/1.1\r\nHost: x\r\n\r\n")
		r, err := cl.read("GET")
		<-handlerErr
		if !errors.Is(err, io.ErrUnexpectedEOF) || r.body != string(data) {
			t.Errorf("got %d bytes and %v, want all %d and an unexpected EOF", len(r.body), err, size)
		}
	})
}

func commonPrefix(a string, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestFlush checks that a flushed part of the body reaches the client while the
// handler still runs: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
func TestFlush(t *testing.T) {
	tests := []struct {
		proto                string
		wantChunked, wantEnd bool
	}{
		{"HTTP/1.1", true, false},
		{"HTTP/1.0", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.proto, func(t *testing.T) {
			proceed := make(chan struct{})
			addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first;")
				w.(http.Flusher).Flush()
				select {
				case <-proceed:
				case <-time.After(5 * time.Second):
				}
				io.WriteString(w, "second")
			})})
			cl := dial(t, addr)
			cl.send("GET / " + tc.proto + "\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
			if chunked != tc.wantChunked || resp.ContentLength != -1 || resp.Close != tc.wantEnd {
				t.Errorf("chunked %v, length %d, close %v", chunked, resp.ContentLength, resp.Close)
			}
			first := make([]byte, len("first;"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
				t.Fatalf("first part: %q, %v (the handler is still waiting)", first, err)
			}
			close(proceed)
			if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "second" {
				t.Errorf("rest: %q, %v", rest, err)
			}
		})
	}
}

// TestShutdown checks the graceful stop: idle connections close at once, a request
// in flight finishes with Connection: close, Serve returns http.ErrServerClosed,
// then Shutdown returns nil; a later Serve is refused.
func TestShutdown(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer s.Close()
	addr := ln.Addr().String()

	idle := dial(t, addr)
	idle.get("/fast")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	idle.expectClosed()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	r := busy.mustRead("GET")
	if r.body != "done" {
		t.Errorf("in-flight response %q", r.body)
	}
	if !r.Close {
		t.Error("the in-flight response has no Connection: close, yet the server closes the connection after it")
	}
	busy.expectClosed()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if err := s.Serve(ln2); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownTimeout checks that Shutdown gives up with ctx's error while a
// request is still in flight, and that Close then ends it.
func TestShutdownTimeout(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})}
	cl := dial(t, serve(t, s))
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	s.Close()
	cl.expectClosed()
}

// TestClose checks that Close ends active connections at once, without waiting for
// their handlers.
func TestClose(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})}
	addr := serve(t, s) // its cleanup checks that Serve returns http.ErrServerClosed
	idle := dial(t, addr)
	busy := dial(t, addr)
	busy.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	s.Close()
	busy.expectClosed()
	idle.expectClosed()
}

// TestPanic checks that a handler's panic closes only its connection and is logged,
// except http.ErrAbortHandler, which is the quiet way to abort.
func TestPanic(t *testing.T) {
	var logs lockedBuffer
	addr := serve(t, &Server{
		ErrorLog: slog.New(slog.NewTextHandler(&logs, nil)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/boom":
				panic("boom-value")
			case "/abort":
				panic(http.ErrAbortHandler)
			case "/after-flush":
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				panic("late-value")
			}
			io.WriteString(w, "ok")
		}),
	})
	tests := []struct{ path, logged string }{
		{"/boom", "boom-value"},
		{"/abort", ""},
		{"/after-flush", "late-value"},
	}
	for _, tc := range tests {
		before := len(logs.String())
		other := dial(t, addr)
		other.get("/ok") // a connection that must survive the panic
		cl := dial(t, addr)
		cl.send("GET " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		// The log line is written before the connection closes.
		if _, err := io.ReadAll(cl.br); err != nil {
			t.Errorf("%s: reading to the end: %v", tc.path, err)
		}
		logged := logs.String()[before:]
		if tc.logged == "" && logged != "" || !strings.Contains(logged, tc.logged) {
			t.Errorf("%s: logged %q, want %q", tc.path, logged, tc.logged)
		}
		if r := other.get("/ok"); r.body != "ok" {
			t.Errorf("%s: another connection: %q", tc.path, r.body)
		}
	}
}

// TestRefusedUpload checks that a client still sending a large body gets the answer
// that refused it (a 412 before the body is read, as safedav gives) rather than a
// reset: closing with the body still arriving resets the connection, and a reset
// makes the client's kernel drop the answer it has not read yet.
func TestRefusedUpload(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "precondition failed", http.StatusPreconditionFailed)
	})})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	const size = 4 << 20
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/f", io.LimitReader(zeros{}, size))
				req.ContentLength = size
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusPreconditionFailed {
					errs <- fmt.Errorf("status %d", res.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
