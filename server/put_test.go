package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"safedav/coord"
	"safedav/overwrite"
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
	waitFor(t, func() bool { return ts.srv.inflight.(*coord.UploadTable).Busy("/busy.txt") }) // the first upload is reading its body

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

// TestParsePut runs the parse step of PUT alone: what is refused before storage is
// touched, in which order, and when the rename policy applies.
func TestParsePut(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		length int64 // Content-Length; -1 unknown (chunked)
		hdr    map[string]string
		status int // 0: parses
		code   string
		rename bool
		policy overwrite.Policy
	}{
		{"file [RFC9110 9.3.4]", "/d/f.txt", 3, nil, 0, "", false, overwrite.Replace},
		{"chunked [RFC9112 7.1]", "/d/f.txt", -1, nil, 0, "", false, overwrite.Replace},
		{"root_is_a_collection [RFC4918 9.7.2]", "/", 3, nil, 405, "is_a_collection", false, 0},
		{"bad_name", "/%2e%2e/f.txt", 3, nil, 400, "invalid_name", false, 0},
		{"content_range [RFC9110 14.5]", "/f.txt", 3, map[string]string{"Content-Range": "bytes 0-2/10"}, 400, "content_range_unsupported", false, 0},
		{"at_the_cap", "/f.txt", 10, nil, 0, "", false, overwrite.Replace},
		{"over_the_cap [RFC9110 15.5.14]", "/f.txt", 11, nil, 413, "upload_too_large", false, 0},
		{"malformed_if_none_match [RFC9110 13.1.2]", "/f.txt", 3, map[string]string{"If-None-Match": "x"}, 400, "bad_condition_header", false, 0},
		{"unknown_policy", "/f.txt", 3, map[string]string{"Overwrite-Policy": "merge"}, 400, "unknown_overwrite_policy", false, 0},
		{"reject", "/f.txt", 3, map[string]string{"Overwrite-Policy": "reject"}, 0, "", false, overwrite.Reject},
		{"rename_unconditional", "/f.txt", 3, map[string]string{"Overwrite-Policy": "rename"}, 0, "", true, overwrite.Rename},
		// A conditional request names the version it replaces: the policy steps aside.
		{"rename_if_match [RFC9110 13.1.1]", "/f.txt", 3, map[string]string{"Overwrite-Policy": "rename", "If-Match": `"v1"`}, 0, "", false, overwrite.Rename},
		{"rename_if_none_match [RFC9110 13.1.2]", "/f.txt", 3, map[string]string{"Overwrite-Policy": "rename", "If-None-Match": "*"}, 0, "", false, overwrite.Rename},
		{"rename_if_unmodified_since [RFC9110 13.1.4]", "/f.txt", 3, map[string]string{"Overwrite-Policy": "rename", "If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}, 0, "", false, overwrite.Rename},
		{"rename_if_header [RFC4918 10.4]", "/f.txt", 3, map[string]string{"Overwrite-Policy": "rename", "If": `(["v1"])`}, 0, "", false, overwrite.Rename},
		// When several things are wrong, the first in parse order is reported.
		{"root_before_content_range", "/", 3, map[string]string{"Content-Range": "bytes 0-2/10"}, 405, "is_a_collection", false, 0},
		{"content_range_before_cap", "/f.txt", 11, map[string]string{"Content-Range": "bytes 0-10/20"}, 400, "content_range_unsupported", false, 0},
		{"cap_before_conditions", "/f.txt", 11, map[string]string{"If-Match": "x"}, 413, "upload_too_large", false, 0},
		{"conditions_before_policy", "/f.txt", 3, map[string]string{"If-Match": "x", "Overwrite-Policy": "merge"}, 400, "bad_condition_header", false, 0},
	}
	s := &Server{cfg: Config{MaxUploadSize: 10}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", tt.path, strings.NewReader("abc"))
			r.ContentLength = tt.length
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			req, err := s.parsePut(r)
			if tt.status != 0 {
				if err == nil {
					t.Fatalf("parsed as %+v, want %d %s", req, tt.status, tt.code)
				}
				if e := s.toError(r, err); e.Status != tt.status || e.Code != tt.code {
					t.Fatalf("%d %s (%v), want %d %s", e.Status, e.Code, err, tt.status, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if req.rename != tt.rename || req.policy != tt.policy || req.meta.Size != tt.length {
				t.Fatalf("rename=%v policy=%v size=%d, want %v %v %d", req.rename, req.policy, req.meta.Size, tt.rename, tt.policy, tt.length)
			}
		})
	}
}

// TestLimitBodyChunked: a body of unknown length is cut off as soon as it passes the
// cap, and one exactly at the cap is read whole.
func TestLimitBodyChunked(t *testing.T) {
	s := &Server{cfg: Config{MaxUploadSize: 10}}
	for _, tt := range []struct {
		body string
		want error
	}{
		{"0123456789", nil},
		{"0123456789X", errUploadTooLarge},
	} {
		r := httptest.NewRequest("PUT", "/f.txt", strings.NewReader(tt.body))
		r.ContentLength = -1
		if err := s.limitBody(r); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r.Body); !errors.Is(err, tt.want) {
			t.Fatalf("%d bytes: read error %v, want %v", len(tt.body), err, tt.want)
		}
	}
}

// TestUploadMeta: the modification time a client asks for (X-OC-Mtime, Unix seconds)
// is stored when it is a plausible time and ignored otherwise, never refused.
func TestUploadMeta(t *testing.T) {
	for _, tt := range []struct {
		mtime string
		want  time.Time
	}{
		{"", time.Time{}},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.5", time.Unix(1700000000, 5e8)},
		{"-1", time.Time{}},
		{"soon", time.Time{}},
		{"1e300", time.Time{}},
	} {
		r := httptest.NewRequest("PUT", "/f.txt", strings.NewReader("abc"))
		r.Header.Set("Content-Type", "text/plain")
		if tt.mtime != "" {
			r.Header.Set("X-OC-Mtime", tt.mtime)
		}
		m := uploadMeta(r)
		if !m.ModTime.Equal(tt.want) || m.ContentType != "text/plain" || m.Size != 3 {
			t.Fatalf("X-OC-Mtime %q: %+v, want time %v", tt.mtime, m, tt.want)
		}
	}
}

// TestPutScopes: which parts of the namespace a PUT needs free of others' locks, in
// the order they are checked.
func TestPutScopes(t *testing.T) {
	file := lockScope{name: "/d/f.txt"}
	parent := lockScope{name: "/d"}
	tests := []struct {
		name   string
		rename bool
		exists bool
		want   []lockScope
	}{
		{"replace_existing [RFC4918 7.1]", false, true, []lockScope{file}},
		{"create_unmapped [RFC4918 7.4]", false, false, []lockScope{file, parent}},
		{"rename_beside_existing [RFC4918 7.5]", true, true, []lockScope{parent}},
		{"rename_free_name [RFC4918 7.4]", true, false, []lockScope{file, parent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := putRequest{name: "/d/f.txt", rename: tt.rename}
			if got := putScopes(req, tt.exists); !slices.Equal(got, tt.want) {
				t.Fatalf("scopes %+v, want %+v", got, tt.want)
			}
		})
	}
}
