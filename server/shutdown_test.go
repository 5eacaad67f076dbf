package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"safedav/backend/local"
)

// On shutdown an upload in flight finishes and is stored; then Serve returns nil.
func TestGracefulShutdownFinishesUploads(t *testing.T) {
	root := t.TempDir()
	store, err := local.New(root, local.Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s, err := New(Config{Backend: store, ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := strings.Repeat("x", 1000)
	fmt.Fprintf(c, "PUT /late.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:500])
	time.Sleep(100 * time.Millisecond) // the handler is now reading the body
	cancel()
	time.Sleep(100 * time.Millisecond)
	fmt.Fprint(c, body[500:])
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload during shutdown answered %d", resp.StatusCode)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the upload finished")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "late.txt")); string(b) != body {
		t.Fatalf("stored %d bytes, want %d", len(b), len(body))
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

// Keep-alive connections waiting for their next request do not hold up a shutdown:
// Serve returns at once and they are closed, where a server that waited for them would
// wait out IdleTimeout (or ShutdownTimeout) first.
func TestShutdownClosesIdleConns(t *testing.T) {
	root := t.TempDir()
	store, err := local.New(root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s, err := New(Config{Backend: store, ShutdownTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("OPTIONS: %v %v", resp, err)
		}
		resp.Body.Close()
		idle = append(idle, c)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return with only idle connections open")
	}
	for i, c := range idle {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("idle connection %d still open after shutdown", i)
		}
	}
	t.Logf("shut down in %v", time.Since(start).Round(time.Millisecond))
}
