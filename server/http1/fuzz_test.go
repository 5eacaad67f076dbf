package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzHandler echoes the request body, in a few response shapes chosen by the path,
// so that the fuzzer reaches every framing the server can produce.
func fuzzHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	switch {
	case strings.HasPrefix(r.URL.Path, "/cl"): // declared length
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/flush"): // flushed: chunked or close-delimited
		w.Write(b)
		w.(http.Flusher).Flush()
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/big"): // past what the server holds back
		w.Write(b)
		w.Write(fuzzFiller)
	case strings.HasPrefix(r.URL.Path, "/204"):
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Write(b)
	}
}

var fuzzFiller = bytes.Repeat([]byte("x"), 5000)

// fuzzWant is the body fuzzHandler answers req with, whose body was body.
func fuzzWant(req *http.Request, body []byte) string {
	switch {
	case req.Method == http.MethodHead || strings.HasPrefix(req.URL.Path, "/204"):
		return ""
	case strings.HasPrefix(req.URL.Path, "/flush"):
		return string(body) + string(body)
	case strings.HasPrefix(req.URL.Path, "/big"):
		return string(body) + string(fuzzFiller)
	}
	return string(body)
}

// FuzzServeConn feeds arbitrary bytes to a server over a real loopback connection
// and checks that the exchange ends (no hang), that nothing panics in the server
// (a recovered panic would be logged), and that everything the server sends back is
// a sequence of well-formed responses, one per request at most, with nothing after
// a response that closes the connection. Loopback TCP rather than net.Pipe: the
// client must half-close to mark the end of its input, and the server's
// close-write and sendfile paths only run on a *net.TCPConn.
func FuzzServeConn(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /flush HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: v\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /204 HTTP/1.1\r\nHost: x\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 300\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 1\r\n\r\nx",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", // over the limit: 431
		"GARBAGE\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var logs lockedBuffer
	s := &Server{
		Handler:           http.HandlerFunc(fuzzHandler),
		MaxHeaderBytes:    4 << 10,
		ReadHeaderTimeout: 2 * time.Second, // the input is all sent at once; this only bounds a bug
		ErrorLog:          slog.New(slog.NewTextHandler(&logs, nil)),
	}
	addr := serve(f, s)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(in) // the server may close before it has read everything
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		c.Close()
		<-wrote
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("the exchange did not end; got %q", out)
		case err != nil && len(in) <= maxDrain:
			// The server drains what it leaves unread before closing, so a reset
			// means it closed abruptly (and could have lost a response).
			t.Fatalf("reading: %v; got %q", err, out)
		case err != nil:
			return // more than the server drains: a reset is legitimate
		}
		if l := logs.String(); l != "" {
			t.Fatalf("the server logged:\n%s", l)
		}
		checkResponses(t, out, parseRequests(in))
	})
}

// sentRequest is a request of the fuzz input and the body its handler answers with.
type sentRequest struct {
	method, want string
}

// parseRequests reads in as the server does and returns the requests it holds, in
// order, up to the first that cannot be read whole.
func parseRequests(in []byte) []sentRequest {
	br := bufio.NewReader(bytes.NewReader(in))
	var reqs []sentRequest
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return reqs
		}
		reqs = append(reqs, sentRequest{req.Method, fuzzWant(req, body)})
	}
}

// checkResponses checks that out is a sequence of complete responses: 1xx ones,
// then at most one final response per request (and one more, the server's answer
// to a request it could not read), and that each success carries the handler's body.
func checkResponses(t *testing.T, out []byte, reqs []sentRequest) {
	t.Helper()
	finals := 0
	for rest := out; len(rest) > 0; {
		method := "GET"
		if finals < len(reqs) {
			method = reqs[finals].method
		}
		resp, body, n, err := parseResponse(rest, method)
		if err == nil && method == "HEAD" && resp.Close && resp.StatusCode >= 400 && n < len(rest) {
			// The server's own answers carry a body even to a HEAD, as net/http's do;
			// the connection ends after them.
			resp, body, n, err = parseResponse(rest, "GET")
		}
		if err != nil {
			t.Fatalf("response %d (to %s) does not parse: %v\nall output: %q", finals, method, err, out)
		}
		rest = rest[n:]
		if resp.StatusCode < 200 {
			if resp.StatusCode != http.StatusContinue {
				t.Fatalf("unexpected %s", resp.Status)
			}
			continue
		}
		if resp.StatusCode < 300 && finals < len(reqs) && body != reqs[finals].want {
			t.Fatalf("response %d: body %q, want %q\nall output: %q", finals, body, reqs[finals].want, out)
		}
		finals++
		if finals > len(reqs)+1 {
			t.Fatalf("%d responses to %d requests: %q", finals, len(reqs), out)
		}
		if resp.Close && len(rest) > 0 {
			t.Fatalf("bytes after a response that closes the connection: %q\nall output: %q", rest, out)
		}
	}
}

// parseResponse reads one response and its body from the start of b and returns
// how many bytes it took.
func parseResponse(b []byte, method string) (*http.Response, string, int, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReader(r)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", 0, err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", 0, err
	}
	return resp, string(body), len(b) - r.Len() - br.Buffered(), nil
}
