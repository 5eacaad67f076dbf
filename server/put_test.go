package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPutCreateReplace(t *testing.T) {
	ts := newTestServer(t)
	r1 := ts.do("PUT", "/a.txt", nil, "one").must(t, http.StatusCreated)
	e1 := r1.Header.Get("ETag")
	if !strings.HasPrefix(e1, `"`) || strings.HasPrefix(e1, "W/") {
		t.Fatalf("ETag %q is not a strong quoted tag", e1)
	}
	r2 := ts.do("PUT", "/a.txt", nil, "two").must(t, http.StatusNoContent)
	e2 := r2.Header.Get("ETag")
	if e2 == e1 {
		t.Fatalf("ETag did not change on a same-size rewrite: %q", e2)
	}
	g := ts.do("GET", "/a.txt", nil, "").must(t, http.StatusOK)
	if g.body != "two" || g.Header.Get("ETag") != e2 {
		t.Fatalf("GET = %q %q, want two %q", g.body, g.Header.Get("ETag"), e2)
	}
	// Unchanged resources keep their ETag.
	if h := ts.do("HEAD", "/a.txt", nil, "").must(t, http.StatusOK); h.Header.Get("ETag") != e2 {
		t.Fatalf("HEAD ETag %q, want %q", h.Header.Get("ETag"), e2)
	}
}

// Strong ETags must change on every write, even many same-size writes within one second.
func TestETagChangesEveryWrite(t *testing.T) {
	ts := newTestServer(t)
	seen := map[string]bool{}
	for i := range 200 {
		r := ts.do("PUT", "/same.txt", nil, fmt.Sprintf("%03d", i))
		if r.StatusCode != http.StatusCreated && r.StatusCode != http.StatusNoContent {
			t.Fatalf("PUT: %d", r.StatusCode)
		}
		et := r.Header.Get("ETag")
		if seen[et] {
			t.Fatalf("write %d reused ETag %s", i, et)
		}
		seen[et] = true
	}
}

func TestPutChunkedAndExpectContinue(t *testing.T) {
	ts := newTestServer(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	// Chunked: no Content-Length, as rclone rcat and macOS Finder send it.
	req, _ := http.NewRequest("PUT", ts.URL+"/chunked.bin", io.MultiReader(bytes.NewReader(data)))
	req.ContentLength = -1
	ts.send(req).must(t, http.StatusCreated)
	got, err := os.ReadFile(filepath.Join(ts.root, "chunked.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("chunked upload stored %d bytes (err %v), want %d", len(got), err, len(data))
	}
	// Expect: 100-continue.
	req, _ = http.NewRequest("PUT", ts.URL+"/expect.bin", bytes.NewReader(data))
	req.Header.Set("Expect", "100-continue")
	ts.send(req).must(t, http.StatusCreated)
	// A refused upload answers before the body is sent.
	raw := ts.rawRequest("PUT /nope/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 409") || strings.Contains(raw, "100 Continue") {
		t.Fatalf("refused Expect upload answered:\n%.300s", raw)
	}
}

func TestPutMissingParentAndCollection(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("PUT", "/no/such/dir/f.txt", nil, "x").must(t, http.StatusConflict)
	if e := r.davError(t); e.Code != "parent_missing" {
		t.Fatalf("code %q, want parent_missing", e.Code)
	}
	r = ts.do("PUT", "/no/f.txt", map[string]string{"Accept": "application/json"}, "x").must(t, http.StatusConflict)
	if m := r.jsonError(t); m["code"] != "parent_missing" || m["request_id"] == "" || m["message"] == "" {
		t.Fatalf("JSON body %v", m)
	}
	ts.do("MKCOL", "/dir", nil, "").must(t, http.StatusCreated)
	r = ts.do("PUT", "/dir", nil, "x").must(t, http.StatusConflict)
	if e := r.davError(t); e.Code != "is_a_collection" {
		t.Fatalf("code %q", e.Code)
	}
	ts.do("PUT", "/file", nil, "x").must(t, http.StatusCreated)
	r = ts.do("PUT", "/file/child", nil, "x").must(t, http.StatusConflict)
	if e := r.davError(t); e.Code != "not_a_collection" {
		t.Fatalf("code %q", e.Code)
	}
	ts.do("PUT", "/x", map[string]string{"Content-Range": "bytes 0-0/1"}, "x").must(t, http.StatusBadRequest)
}

// A client that disconnects mid-upload leaves the previous version byte-identical and
// no temporary file behind.
func TestInterruptedUploadKeepsOldFile(t *testing.T) {
	ts := newTestServer(t)
	old := bytes.Repeat([]byte("old!"), 4096)
	ts.do("PUT", "/keep.bin", nil, string(old)).must(t, http.StatusCreated)
	oldSum := sha256.Sum256(old)

	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PUT /keep.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
	c.Write(bytes.Repeat([]byte("new"), 100000))
	time.Sleep(100 * time.Millisecond)
	c.Close()

	// The server notices the disconnect and cleans up; wait for the temp file to go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := os.ReadFile(filepath.Join(ts.root, "keep.bin"))
		if sha256.Sum256(got) != oldSum {
			t.Fatal("the previous version was damaged by an interrupted upload")
		}
		if tmps := tempFiles(t, ts.root); len(tmps) == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("temporary files left behind: %v", tmps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The file still serves and is writable.
	ts.do("PUT", "/keep.bin", nil, "fresh").must(t, http.StatusNoContent)
}

func tempFiles(t *testing.T, root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".safedav-tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestPutModTimeHeader(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("PUT", "/m.txt", map[string]string{"X-OC-Mtime": "1500000000"}, "x").must(t, http.StatusCreated)
	if r.Header.Get("X-OC-Mtime") != "accepted" {
		t.Fatal("X-OC-Mtime not acknowledged")
	}
	fi, err := os.Stat(filepath.Join(ts.root, "m.txt"))
	if err != nil || fi.ModTime().Unix() != 1500000000 {
		t.Fatalf("mtime %v, want 1500000000", fi.ModTime().Unix())
	}
}

// A second upload to a path while the first is still sending its body is refused with
// 409 upload_in_progress; a conditional one waits for the first and is then judged
// against the version it left (412 with the new ETag).
func TestUploadInProgress(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.InflightWait = 5 * time.Second })
	old := ts.do("PUT", "/busy.txt", nil, "v1").must(t, http.StatusCreated).Header.Get("ETag")

	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /busy.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf.")
	waitFor(t, func() bool { return ts.srv.inflight.Busy("/busy.txt") }) // the first upload is reading its body

	r := ts.do("PUT", "/busy.txt", map[string]string{"Accept": "application/json"}, "second")
	r.must(t, http.StatusConflict)
	if m := r.jsonError(t); m["code"] != "upload_in_progress" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("body %v, Retry-After %q", m, r.Header.Get("Retry-After"))
	}
	cond := make(chan result, 1)
	go func() { cond <- ts.do("PUT", "/busy.txt", map[string]string{"If-Match": old}, "third") }()
	time.Sleep(200 * time.Millisecond)
	fmt.Fprint(c, "done!") // the first upload completes
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first upload: %v %v", resp, err)
	}
	first := resp.Header.Get("ETag")
	r = <-cond
	r.must(t, http.StatusPreconditionFailed)
	if e := r.davError(t); e.Code != "version_conflict" || e.ETag != first {
		t.Fatalf("conditional upload after the first: %+v, want version_conflict with ETag %s", e, first)
	}
	if g := ts.do("GET", "/busy.txt", nil, ""); g.body != "half.done!" {
		t.Fatalf("content %q", g.body)
	}
}

// waitFor polls cond until it holds (bounded), for states a test cannot be told about.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
	}
}

// An upload with an Idempotency-Key that the client abandons mid-body is not recorded:
// its retry with the same key is applied, not answered with a replay of nothing.
func TestInterruptedIdempotentUploadRetries(t *testing.T) {
	ts := newTestServer(t)
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PUT /r.bin HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\nContent-Length: 1000000\r\n\r\n")
	c.Write(bytes.Repeat([]byte("x"), 100000))
	time.Sleep(100 * time.Millisecond)
	c.Close()
	key := map[string]string{"Idempotency-Key": "k1"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// 409 while the abandoned request is still being wound up.
		r := ts.do("PUT", "/r.bin", key, "whole")
		if r.StatusCode == http.StatusConflict && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.must(t, http.StatusCreated)
		if r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatal("the retry was answered with a replay")
		}
		break
	}
	if b, _ := os.ReadFile(filepath.Join(ts.root, "r.bin")); string(b) != "whole" {
		t.Fatalf("stored %q after the retry", b)
	}
}
