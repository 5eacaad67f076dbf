package server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// cork sets TCP_CORK on the request's connection and the returned function clears it
// (a connection left corked would hold back the end of every later response); without
// a TCP connection it does nothing.
func TestCork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	corked := func() int {
		t.Helper()
		rc, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	r := httptest.NewRequest("GET", "/f", nil)
	r = r.WithContext(withConn(r.Context(), server))
	uncork := cork(r)
	if corked() != 1 {
		t.Error("cork did not set TCP_CORK")
	}
	uncork()
	if corked() != 0 {
		t.Error("uncork left TCP_CORK set")
	}
	cork(httptest.NewRequest("GET", "/f", nil))() // no connection: nothing to do, no panic
}

// readFromSpy is net/http's ResponseWriter with a record of what io.Copy handed to
// its ReadFrom.
type readFromSpy struct {
	http.ResponseWriter
	src []io.Reader
}

func (w *readFromSpy) ReadFrom(r io.Reader) (int64, error) {
	w.src = append(w.src, r)
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

// A large GET reaches net/http's response as a copy from the *os.File itself, the
// shape its ReadFrom gives to sendfile(2), through the middleware's statusWriter; and
// the request's context carries the TCP connection that cork needs (ConnContext).
func TestLargeGetSendfilePath(t *testing.T) {
	ts := newTestServer(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: past smallFile
	if err := os.WriteFile(filepath.Join(ts.root, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		spy  *readFromSpy
		conn *net.TCPConn
	}
	served := make(chan seen, 1)
	hs := ts.srv.HTTPServer()
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spy := &readFromSpy{ResponseWriter: w}
		conn, _ := r.Context().Value(connCtxKey{}).(*net.TCPConn)
		ts.srv.ServeHTTP(spy, r)
		served <- seen{spy, conn}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/big")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	got := <-served
	spy, conn := got.spy, got.conn
	if conn == nil {
		t.Error("the request's context holds no *net.TCPConn: HTTPServer lost ConnContext, and cork does nothing")
	}
	fromFile := false
	for _, src := range spy.src {
		if lr, ok := src.(*io.LimitedReader); ok {
			src = lr.R
		}
		if _, ok := src.(*os.File); ok {
			fromFile = true
		}
	}
	if !fromFile {
		t.Errorf("ReadFrom got %d readers, none an *os.File: the body is copied through user space instead of sendfile", len(spy.src))
	}
}
