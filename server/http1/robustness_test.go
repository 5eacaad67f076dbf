package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// settleGoroutines waits (polling, not sleeping blindly) until at most want
// goroutines run, and returns the count it ended with.
func settleGoroutines(want int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// numConns is how many connections s tracks.
func numConns(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// waitConns waits until s tracks n connections.
func waitConns(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for numConns(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("the server tracks %d connections, want %d", numConns(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownSilentConn: a connection that has sent nothing yet must not hold
// Shutdown for ReadHeaderTimeout (20 s in safedav; a browser's preconnect is such a
// connection), or for ever with the zero value's no timeout. As in net/http, Shutdown
// closes it once it is older than a grace period (5 s; shortened here), and a request
// that arrives within the grace is still answered.
func TestShutdownSilentConn(t *testing.T) {
	for _, rht := range []time.Duration{0, 20 * time.Second} {
		t.Run("ReadHeaderTimeout="+rht.String(), func(t *testing.T) {
			s := &Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: rht, newConnGrace: 300 * time.Millisecond}
			addr := serve(t, s)
			silent := dial(t, addr) // a browser's preconnect: no request (yet)
			late := dial(t, addr)   // sends its request once Shutdown has begun
			waitConns(t, s, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			shut := make(chan error, 1)
			go func() { shut <- s.Shutdown(ctx) }()
			time.Sleep(50 * time.Millisecond)
			late.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
			if r := late.mustRead("POST"); r.StatusCode != 200 || !r.Close {
				t.Errorf("a request within the grace: %d, close=%v; want 200 and Connection: close", r.StatusCode, r.Close)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown with a connection that has sent nothing: %v after %v", err, time.Since(start).Round(time.Millisecond))
			}
			silent.expectClosed()
		})
	}
}

// TestSilentConnsReleased opens connections that never send a byte, or
// stop in the middle of their headers: ReadHeaderTimeout closes them all and no
// goroutine or connection is left behind.
func TestSilentConnsReleased(t *testing.T) {
	const n = 20
	s := &Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: 200 * time.Millisecond}
	addr := serve(t, s)
	base := runtime.NumGoroutine()
	var cls []*client
	for i := range n {
		cl := dial(t, addr)
		switch i % 3 {
		case 1:
			cl.send("GET / HTTP/1.1\r\nHost: x\r\n")
		case 2:
			cl.send("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")
			for range 5 { // many tiny lines, slowly
				cl.send("a:b\r\n")
			}
		}
		cls = append(cls, cl)
	}
	waitConns(t, s, n)
	for _, cl := range cls {
		cl.expectClosed()
	}
	waitConns(t, s, 0)
	if got := settleGoroutines(base, 2*time.Second); got > base {
		t.Errorf("%d goroutines, %d before the connections", got, base)
	}
}

// TestClientsGoAway: clients that go away at awkward moments leave nothing
// behind: no connection tracked, no goroutine.
func TestClientsGoAway(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ignore":
			io.WriteString(w, "ignored")
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 64<<10))
		case "/done": // waits on Done: a watch runs
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/read":
			io.Copy(io.Discard, r.Body)
		default:
			io.WriteString(w, "ok")
		}
	}), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	defer close(release)
	addr := serve(t, s)
	base := runtime.NumGoroutine()

	var wg sync.WaitGroup
	run := func(name string, f func(c net.Conn)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			f(c)
		}()
	}
	run("partial headers", func(c net.Conn) {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-A: b")
	})
	run("partial body", func(c net.Conn) {
		io.WriteString(c, "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
		time.Sleep(50 * time.Millisecond)
	})
	run("endless chunked body, unread", func(c net.Conn) {
		io.WriteString(c, "POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := []byte("1000\r\n" + strings.Repeat("c", 0x1000) + "\r\n")
		for i := 0; i < 64; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	run("pipelined, responses never read", func(c net.Conn) {
		var b strings.Builder
		for range 500 {
			b.WriteString("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		go io.WriteString(c, b.String())
		time.Sleep(100 * time.Millisecond)
	})
	run("watched request", func(c net.Conn) {
		io.WriteString(c, "GET /done HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
	})
	wg.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for numConns(s) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := numConns(s); n != 0 {
		t.Errorf("%d connections still tracked after their clients went away", n)
	}
	if got := settleGoroutines(base, 3*time.Second); got > base {
		t.Errorf("%d goroutines, %d before the clients", got, base)
	}
}

// TestEndlessChunkedUnread: a client streams a chunked body the handler never
// reads; the answer arrives, says close, and the connection ends soon after
// (not when the client stops sending).
func TestEndlessChunkedUnread(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})})
	cl := dial(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		io.WriteString(cl.c, "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := []byte("1000\r\n" + strings.Repeat("c", 0x1000) + "\r\n")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cl.c.Write(chunk); err != nil {
				return
			}
		}
	}()
	r := cl.mustRead("PUT")
	if r.StatusCode != http.StatusForbidden || !r.Close {
		t.Fatalf("%d close=%v", r.StatusCode, r.Close)
	}
	start := time.Now()
	_, err := io.Copy(io.Discard, cl.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection stays open while the client streams")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("closed after %v", el)
	}
}

// transcript sends raw then a last request that closes, and returns the responses
// in order as "status body" strings, until the connection ends.
func transcript(addr, raw string) ([]string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	go io.WriteString(c, raw+"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	var out []string
	methods := requestMethods(raw)
	for i := 0; ; i++ {
		method := "GET"
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return out, nil
			}
			return out, err
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return out, err
		}
		if resp.StatusCode >= 400 {
			b = nil // the servers' own error bodies differ
		}
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
		if resp.Close {
			return out, nil
		}
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// requestMethods is a rough guess at the methods of raw's requests, only for HEAD.
func requestMethods(raw string) []string {
	var m []string
	for _, line := range strings.Split(raw, "\n") {
		for _, meth := range []string{"GET ", "POST ", "HEAD ", "PUT "} {
			if strings.HasPrefix(line, meth) {
				m = append(m, strings.TrimSpace(meth))
			}
		}
	}
	return m
}

// TestFraming sends the same byte streams, each followed by a last request, to
// http1 and net/http with a handler that reads the whole body, and compares the
// sequence of answers: where a request ends and the next begins must be the same
// on both.
func TestFraming(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s%s[%s]", r.Method, r.URL.Path, b)
	})
	h1 := serve(t, &Server{Handler: h, MaxHeaderBytes: 4 << 10})
	std := serveStd(t, h, 4<<10)
	const next = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct{ name, raw string }{
		{"CL and chunked, smuggled request in the CL view", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next},
		{"chunked and CL, CL first", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + next},
		{"two equal CLs", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + next},
		{"CL list", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc" + next},
		{"CL with a plus", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc" + next},
		{"CL hex", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc" + next},
		{"CL obs-fold", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 3\r\n\r\nabc" + next},
		{"TE obs-fold", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + next},
		{"TE chunked, identity", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + next},
		{"TE identity", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc" + next},
		{"TE Chunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + next},
		{"TE with a space before the colon", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc" + next},
		{"chunk extension", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b;c=\"d\"\r\nabc\r\n0;z\r\n\r\n" + next},
		{"chunk size with bare LF", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n" + next},
		{"chunk size 0x3", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + next},
		{"chunk data longer than its size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n" + next},
		{"trailer", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + next},
		{"bare LF request", "POST /a HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc" + next},
		{"body shorter than declared, then a request", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc" + next},
		{"HTTP/1.0 chunked and CL", "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + next},
		{"NUL in a header", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + next},
		{"CR in a header value", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + next},
		{"space before the first header", "GET /a HTTP/1.1\r\n Host: x\r\n\r\n" + next},
		{"HEAD then GET", "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n" + next},
		{"GET with a body", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + next},
		{"Connection: close mid-pipeline", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + next},
		{"HTTP/1.0 keep-alive pipeline", "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + next},
		{"request line over the header limit", "GET /" + strings.Repeat("p", 12<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n" + next},
		{"many tiny header lines over the limit", "GET /a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a:b\r\n", 3000) + "\r\n" + next},
		{"many tiny header lines under the limit", "GET /a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a:b\r\n", 500) + "\r\n" + next},
		{"invalid method", "G@T /a HTTP/1.1\r\nHost: x\r\n\r\n" + next},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := transcript(std, tc.raw)
			if err != nil {
				t.Fatalf("net/http: %v (%q)", err, want)
			}
			got, err := transcript(h1, tc.raw)
			if err != nil {
				t.Fatalf("http1: %v (%q; net/http: %q)", err, got, want)
			}
			if strings.Join(got, " | ") != strings.Join(want, " | ") {
				t.Errorf("answers differ\nhttp1:    %q\nnet/http: %q", got, want)
			}
		})
	}
}

// TestCRLFAfterPost: RFC 9112 §2.2 asks a server to ignore at least one empty
// line before a request line, because some clients send a CRLF after a POST body;
// net/http does (after a POST), answering the next request, and so must http1 (it
// took the empty line for a malformed request line: 400, and the connection closed).
func TestCRLFAfterPost(t *testing.T) {
	h := http.HandlerFunc(echoHandler)
	raw := "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	want, err := transcript(serveStd(t, h, 0), raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := transcript(serve(t, &Server{Handler: h}), raw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("answers differ\nhttp1:    %q\nnet/http: %q", got, want)
	}
}

// TestDuplicateContentLength: a handler that sets Content-Length twice (Add,
// or headers copied from elsewhere) gets a body framed by the first value, as on
// net/http. http1 used to ignore both, leave them in the header and chunk the body
// next to them, which RFC 9112 §6.1 forbids and proxies refuse (nginx: 502) or,
// worse, read by the length.
func TestDuplicateContentLength(t *testing.T) {
	const size = 6000
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Content-Length", strconv.Itoa(size))
		w.Header().Add("Content-Length", strconv.Itoa(size))
		w.Write(bytes.Repeat([]byte("d"), size))
	})
	for name, addr := range map[string]string{"net/http": serveStd(t, h, 0), "http1": serve(t, &Server{Handler: h})} {
		cl := dial(t, addr)
		cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		var raw bytes.Buffer
		resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(cl.br, &raw)), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		resp.Body.Close()
		head, _, _ := strings.Cut(raw.String(), "\r\n\r\n")
		lower := strings.ToLower(head)
		if strings.Contains(lower, "transfer-encoding") && strings.Contains(lower, "content-length") {
			t.Errorf("%s: both Transfer-Encoding and Content-Length:\n%s", name, head)
		}
	}
}

// TestMmapSizes sends files around the sizes where the send path changes:
// sendfile below 1 MiB (after the 512 sniffed bytes), mapped windows of 4 MiB.
func TestMmapSizes(t *testing.T) {
	dir := t.TempDir()
	max := 2*mapWindow + 513
	data := make([]byte, max)
	rand.NewChaCha8([32]byte{2}).Read(data)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(dir, r.URL.Path[1:]))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "f.bin", time.Unix(1e9, 0), f)
	})})
	sizes := []int{mapMin - 1, mapMin, mapMin + sniffLen - 1, mapMin + sniffLen, mapMin + sniffLen + 1,
		mapWindow + sniffLen, mapWindow + sniffLen + 1, 2*mapWindow + sniffLen, max}
	cl := dial(t, addr)
	cl.c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, n := range sizes {
		name := strconv.Itoa(n)
		if err := os.WriteFile(filepath.Join(dir, name), data[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		check := func(what, rng string, want []byte, status int) {
			req := "GET /" + name + " HTTP/1.1\r\nHost: x\r\n"
			if rng != "" {
				req += "Range: " + rng + "\r\n"
			}
			cl.send(req + "\r\n")
			r := cl.mustRead("GET")
			if r.StatusCode != status || r.body != string(want) {
				t.Errorf("size %d %s: %d, %d bytes, want %d, %d bytes; equal prefix %d", n, what, r.StatusCode, len(r.body), status, len(want), commonPrefix(r.body, want))
			}
		}
		check("whole", "", data[:n], 200)
		// A range ending on the window's end, one starting on it, one page-unaligned
		// start that crosses it.
		if n > mapWindow+sniffLen {
			check("to the window end", "bytes=0-"+strconv.Itoa(mapWindow+sniffLen-1), data[:mapWindow+sniffLen], 206)
			check("from a window", "bytes="+strconv.Itoa(mapWindow)+"-", data[mapWindow:n], 206)
			end := min(mapWindow+5000, n-1)
			check("across the window", "bytes=4097-"+strconv.Itoa(end), data[4097:end+1], 206)
		}
		cl.send("HEAD /" + name + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if r := cl.mustRead("HEAD"); r.ContentLength != int64(n) || r.body != "" {
			t.Errorf("size %d HEAD: length %d, %d bytes", n, r.ContentLength, len(r.body))
		}
	}
}

// TestMmapTruncated truncates a file while its mapped windows are being sent to
// a client that does not read: the process must survive (no SIGBUS), the client gets
// a prefix of the file and then the end of the connection, and the server carries on.
func TestMmapTruncated(t *testing.T) {
	const size = 24 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	name := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	entered := make(chan struct{}, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		f, err := os.Open(name)
		if err != nil {
			sent <- err
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		entered <- struct{}{}
		_, err = io.CopyN(w, f, size) // as http.ServeContent sends: the mapped path
		sent <- err
	})}
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(16 << 10) // no autotuning: the server blocks soon
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	time.Sleep(200 * time.Millisecond) // the server is now blocked in a window's write
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	got, rerr := io.ReadAll(c)
	var ne net.Error
	if errors.As(rerr, &ne) && ne.Timeout() {
		t.Fatal("the connection did not end after the truncation")
	}
	if err := <-sent; err == nil {
		t.Error("io.CopyN of a truncated file reported no error")
	} else {
		t.Logf("the handler's io.CopyN: %v", err)
	}
	_, body, _ := bytes.Cut(got, []byte("\r\n\r\n"))
	if len(body) >= size || !bytes.Equal(body, data[:len(body)]) {
		t.Errorf("received %d body bytes, equal prefix %d; want a strict prefix of the %d", len(body), commonPrefix(string(body), data), size)
	}
	if r := dial(t, addr).get("/ok"); r.body != "ok" {
		t.Errorf("after the truncation: %q", r.body)
	}
}

// TestConcurrentShutdownRace runs requests that use 100-continue, the watch
// (Done, also from another goroutine), pipelining and Flush while Shutdown and then
// Close happen, for the race detector; Serve then refuses to start again.
func TestConcurrentShutdownRace(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := r.Context().Done()
		go func() { _ = r.Context().Err(); <-r.Context().Done() }() // ends: cancelled after the handler
		io.Copy(w, r.Body)
		select {
		case <-done:
		case <-time.After(time.Millisecond):
		}
		w.(http.Flusher).Flush()
		io.WriteString(w, "end")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 512)
			for j := range 20 {
				req := "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
				if (i+j)%2 == 0 {
					req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
				}
				if _, err := io.WriteString(c, req); err != nil {
					return
				}
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Shutdown(ctx)
	s.Close()
	wg.Wait()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", ln2.Addr().String()); err == nil {
		t.Error("the listener given to Serve after Shutdown is still open")
	}
}

// TestMalformedAnswered: requests http.ReadRequest refuses get net/http's
// answer. A *url.Error implements net.Error, so taking every net.Error for a network
// failure met a request whose target does not parse with silence instead of 400; and
// the text of an error quotes the request, so only its start may pick the 501.
func TestMalformedAnswered(t *testing.T) {
	h := http.HandlerFunc(conformanceHandler)
	h1 := serve(t, &Server{Handler: h})
	std := serveStd(t, h, 0)
	tests := []struct{ name, req string }{
		{"bad escape in the target", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"bad IPv6 authority", "GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"control byte in the target", "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"version quoting \"transfer encoding\"", "GET / transfer encoding\r\nHost: x\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			so, err := exchange(std, tc.req)
			if err != nil {
				t.Fatalf("net/http: %v", err)
			}
			ho, err := exchange(h1, tc.req)
			if err != nil {
				t.Fatalf("http1: %v (net/http answered %d)", err, so.status)
			}
			if ho.status != so.status {
				t.Errorf("http1 answered %d, net/http %d", ho.status, so.status)
			}
		})
	}
}

// TestInformationalHeaders: a 1xx response carries the handler's headers except
// Content-Length (RFC 9110 §8.6) and Transfer-Encoding (RFC 9112 §6.1), which belong
// to the final response (net/http leaves both out too: excludedHeadersNoBody).
func TestInformationalHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "ok")
	})
	for name, addr := range map[string]string{"net/http": serveStd(t, h, 0), "http1": serve(t, &Server{Handler: h})} {
		cl := dial(t, addr)
		cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		r := cl.mustRead("GET")
		if r.StatusCode != http.StatusEarlyHints {
			t.Fatalf("%s: first response %d", name, r.StatusCode)
		}
		if v := r.Header.Get("Content-Length"); v != "" {
			t.Errorf("%s: the 103 response carries Content-Length: %s", name, v)
		}
		if r := cl.mustRead("GET"); r.StatusCode != 200 || r.body != "ok" {
			t.Errorf("%s: final response %d %q", name, r.StatusCode, r.body)
		}
	}
}
