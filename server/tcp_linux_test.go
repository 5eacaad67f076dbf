package server

import (
	"net"
	"net/http/httptest"
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
