//go:build unix

package server

import (
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO or socket in the tree is not served, and never blocks a request.
func TestSpecialFilesNotServed(t *testing.T) {
	ts := newTestServer(t)
	if err := syscall.Mkfifo(filepath.Join(ts.root, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan result, 1)
	go func() { done <- ts.do("GET", "/fifo", nil, "") }()
	select {
	case r := <-done:
		r.must(t, http.StatusNotFound)
	case <-time.After(5 * time.Second):
		t.Fatal("GET of a FIFO blocked")
	}
	ms := ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 1 {
		t.Fatalf("the FIFO was listed: %d responses", len(ms.Responses))
	}
}
