package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"safedav/backend"
	"safedav/backend/local"
	"safedav/backend/s3"
	"safedav/internal/faultproxy"
)

// What a store that fails looks like to a client: never a listing (a sync client
// would delete what it did not see), always a status that says what happened.

// needRoot skips a test that needs root or mount(2), unless CI=true, where it fails.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but not root: %s", why)
	}
	t.Skipf("not root: %s", why)
}

// tmpfs mounts a tmpfs of size bytes on a new folder and unmounts it when the test
// ends (after everything registered later, such as a store on it, is closed).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("mount tmpfs refused: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

// serveLocal serves a local store at root (which must exist and be writable now).
func serveLocal(t *testing.T, root string, mod ...func(*Config)) *testServer {
	t.Helper()
	store, err := local.New(root, local.Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ts := startServer(t, Config{Backend: store}, mod...)
	ts.root = root
	return ts
}

// wantError checks a structured error: status, code, and for 503 a Retry-After.
func wantError(t *testing.T, r result, status int, code string) {
	t.Helper()
	r.must(t, status)
	if e := r.davError(t); e.Code != code {
		t.Fatalf("%s %s: code %q, want %q\n%s", r.Request.Method, r.Request.URL.Path, e.Code, code, r.body)
	}
	if status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After")
	}
	if strings.Contains(r.body, "multistatus") {
		t.Fatalf("an error body that is a listing:\n%s", r.body)
	}
}

// EROFS: a filesystem remounted read-only refuses every write with 403
// storage_forbidden (nothing to retry), not 500; reads still work.
func TestReadOnlyFilesystem(t *testing.T) {
	dir := tmpfs(t, "4m")
	ts := serveLocal(t, dir)
	ts.do("MKCOL", "/d", nil, "").must(t, http.StatusCreated)
	ts.do("PUT", "/d/f.txt", nil, "kept").must(t, http.StatusCreated)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	wantError(t, ts.do("PUT", "/d/f.txt", nil, "lost?"), http.StatusForbidden, "storage_forbidden")
	wantError(t, ts.do("PUT", "/d/new.txt", nil, "new"), http.StatusForbidden, "storage_forbidden")
	wantError(t, ts.do("MKCOL", "/e", nil, ""), http.StatusForbidden, "storage_forbidden")
	wantError(t, ts.do("DELETE", "/d/f.txt", nil, ""), http.StatusForbidden, "storage_forbidden")
	wantError(t, ts.do("COPY", "/d", map[string]string{"Destination": ts.URL + "/c"}, ""), http.StatusForbidden, "storage_forbidden")
	if g := ts.do("GET", "/d/f.txt", nil, "").must(t, http.StatusOK); g.body != "kept" {
		t.Fatalf("GET = %q", g.body)
	}
}

// ENOSPC: a full disk is 507 and leaves the old content.
func TestFullFilesystem(t *testing.T) {
	dir := tmpfs(t, "1m")
	ts := serveLocal(t, dir)
	ts.do("PUT", "/f.txt", nil, "kept").must(t, http.StatusCreated)
	wantError(t, ts.do("PUT", "/f.txt", nil, strings.Repeat("x", 2<<20)), http.StatusInsufficientStorage, "insufficient_storage")
	if g := ts.do("GET", "/f.txt", nil, "").must(t, http.StatusOK); g.body != "kept" {
		t.Fatalf("GET = %q", g.body)
	}
}

// A segment longer than 255 bytes is 400 name_too_long for every method, on disk
// (where the filesystem would say ENAMETOOLONG) as on S3.
func TestNameTooLong(t *testing.T) {
	for _, tc := range backends(t) {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.start(t)
			long := "/" + strings.Repeat("n", 256)
			for _, m := range []string{"GET", "PUT", "PROPFIND", "DELETE", "MKCOL"} {
				wantError(t, ts.do(m, long, map[string]string{"Depth": "0"}, ""), http.StatusBadRequest, "name_too_long")
			}
			ts.do("PUT", "/a.txt", nil, "a").must(t, http.StatusCreated)
			wantError(t, ts.do("COPY", "/a.txt", map[string]string{"Destination": ts.URL + long}, ""), http.StatusBadRequest, "name_too_long")
			// 255 bytes is allowed.
			ts.do("PUT", "/"+strings.Repeat("n", 255), nil, "ok").must(t, http.StatusCreated)
		})
	}
}

type backendCase struct {
	name  string
	start func(t *testing.T) *testServer
}

// backends are the stores end-to-end cases run over: local always, S3 when a test
// server is configured.
func backends(t *testing.T) []backendCase {
	cases := []backendCase{{"local", func(t *testing.T) *testServer { return newTestServer(t) }}}
	if os.Getenv("SAFEDAV_TEST_S3_ENDPOINT") != "" || os.Getenv("CI") == "true" {
		cases = append(cases, backendCase{"s3", func(t *testing.T) *testServer { return s3Servers(t, 1)[0] }})
	}
	return cases
}

// failingList wraps a store so that a listing fails after `after` members with err,
// as a disk or a bucket failing mid-listing would.
type failingList struct {
	backend.Backend
	after int
	err   error
	fail  func() // when set, called instead of returning err: the real failure
}

func (f *failingList) List(ctx context.Context, dir string, fn func(backend.Info) error) error {
	n := 0
	return f.Backend.List(ctx, dir, func(in backend.Info) error {
		if n == f.after {
			if f.fail == nil {
				return f.err
			}
			f.fail()
		}
		n++
		return fn(in)
	})
}

// A listing that fails before its 207 is sent is answered with the error; one that
// fails after is cut off, so the client never reads a complete multistatus.
func TestListingFailureNeverAListing(t *testing.T) {
	root := t.TempDir()
	store, err := local.New(root, local.Options{Sync: false})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 1500 {
		if err := os.WriteFile(fmt.Sprintf("%s/file-with-a-long-enough-name-%04d.txt", root, i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fl := &failingList{Backend: store, err: fmt.Errorf("disk: %w", backend.ErrUnavailable)}
	ts := startServer(t, Config{Backend: fl})

	fl.after = 0
	wantError(t, ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, ""), http.StatusServiceUnavailable, "storage_unavailable")
	fl.after = 10
	wantError(t, ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, ""), http.StatusServiceUnavailable, "storage_unavailable")
	fl.err = fmt.Errorf("disk: %w", backend.ErrForbidden)
	wantError(t, ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, ""), http.StatusForbidden, "storage_forbidden")

	// 1,400 entries are more than the 128 KiB held back: the 207 has started.
	fl.after = 1400
	assertAborted(t, ts, "/")
	fl.after = -1
	ms := ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 1501 {
		t.Fatalf("%d entries, want 1501", len(ms.Responses))
	}
}

// assertAborted sends PROPFIND Depth: 1 and checks that the answer, if any, is cut
// off: reading it fails and what arrived has no end tag.
func assertAborted(t *testing.T, ts *testServer, path string) {
	t.Helper()
	req, _ := http.NewRequest("PROPFIND", ts.URL+path, nil)
	req.Header.Set("Depth", "1")
	resp, err := ts.Client().Do(req)
	if err != nil {
		return // cut before the headers: fine
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("status %d, a complete body of %d bytes; want an aborted response", resp.StatusCode, len(body))
	}
	if strings.Contains(string(body), "</D:multistatus>") {
		t.Fatal("the aborted body still ends its multistatus")
	}
}

// s3Proxied is an S3 store reached through a faultproxy, so the test can take the
// store away mid-request; the bucket holds n files under a fresh prefix.
func s3Proxied(t *testing.T, n int) (*s3.Store, *faultproxy.Proxy) {
	t.Helper()
	endpoint := os.Getenv("SAFEDAV_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no S3 server")
		}
		t.Skip("no S3 server (run .ci/s3server start DIR and export its variables)")
	}
	s3Servers(t, 0) // makes the bucket
	access, secret := os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY"), os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")
	const bucket = "server-e2e"
	prefix := strings.ReplaceAll(t.Name(), "/", "_") + "-" + fmt.Sprint(os.Getpid()) + "/"
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			key := fmt.Sprintf("%sfile-with-a-long-enough-name-%04d.txt", prefix, i)
			if _, err := mc.PutObject(t.Context(), bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	store, err := s3.New(t.Context(), s3.Options{Endpoint: proxy.Addr(), Bucket: bucket, Prefix: prefix, Region: "us-east-1",
		AccessKey: access, SecretKey: secret, Insecure: true, PartSize: s3.MinPartSize,
		MaxRetries: 1, ListPageSize: 25})
	if err != nil {
		t.Fatal(err)
	}
	return store, proxy
}

// The S3 store cut before a listing, and at several points of one that spans many
// list pages: 503 storage_unavailable with Retry-After before the 207 is sent, an
// aborted response after; never a 207 with members missing.
func TestS3DownListing(t *testing.T) {
	store, proxy := s3Proxied(t, 600)
	fl := &failingList{Backend: store, after: -1, fail: proxy.Cut}
	ts := startServer(t, Config{Backend: store})
	tsCut := startServer(t, Config{Backend: struct {
		backend.Backend
		backend.PropStore
	}{fl, store}})

	ms := ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 601 {
		t.Fatalf("%d entries, want 601", len(ms.Responses))
	}

	proxy.Cut()
	wantError(t, ts.do("PROPFIND", "/", map[string]string{"Depth": "1"}, ""), http.StatusServiceUnavailable, "storage_unavailable")
	wantError(t, ts.do("GET", "/file-with-a-long-enough-name-0001.txt", nil, ""), http.StatusServiceUnavailable, "storage_unavailable")
	wantError(t, ts.do("PUT", "/new.txt", nil, "new"), http.StatusServiceUnavailable, "storage_unavailable")
	wantError(t, ts.do("DELETE", "/file-with-a-long-enough-name-0001.txt", nil, ""), http.StatusServiceUnavailable, "storage_unavailable")
	proxy.Restore()

	// Cut after 30 members (the second list page): still held back, so a 503.
	fl.after = 30
	wantError(t, tsCut.do("PROPFIND", "/", map[string]string{"Depth": "1"}, ""), http.StatusServiceUnavailable, "storage_unavailable")
	proxy.Restore()

	// Cut after 500 members: more than 128 KiB were sent, so the answer is cut off.
	fl.after = 500
	assertAborted(t, tsCut, "/")
	proxy.Restore()
}

// A backend-level check that the listing itself fails, whatever the server does: an
// error on a later list page is returned, not the end of the listing.
func TestS3ListFailsOnLaterPage(t *testing.T) {
	store, proxy := s3Proxied(t, 120)
	n := 0
	err := store.List(t.Context(), "/", func(backend.Info) error {
		if n++; n == 10 { // within the first batch: pages 4 and 5 are still to come
			proxy.Cut()
		}
		return nil
	})
	proxy.Restore()
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("List after %d members: %v, want ErrUnavailable", n, err)
	}
}

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A client that goes away in the middle of an upload is incomplete_body: logged at
// info, recorded as 400 in the access log (never 200 or 500), nothing stored. A body
// with broken chunked encoding is 400 malformed_body.
func TestUploadBodyBroken(t *testing.T) {
	var logs logBuffer
	ts := newTestServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	rc := ts.dial(t)
	if err := rc.send("PUT /gone.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("u", 1000)); err != nil {
		t.Fatal(err)
	}
	rc.c.Close()
	var line map[string]any
	for deadline := time.Now().Add(10 * time.Second); line == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for the broken upload:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
		for l := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["path"] == "/gone.txt" {
				line = m
			}
		}
	}
	if line["status"] != float64(http.StatusBadRequest) {
		t.Errorf("access log status %v, want 400", line["status"])
	}
	if !strings.Contains(logs.String(), `"level":"INFO","msg":"upload body incomplete"`) {
		t.Errorf("no info line for the broken upload:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a broken upload logged as an error:\n%s", logs.String())
	}
	ts.do("GET", "/gone.txt", nil, "").must(t, http.StatusNotFound)

	raw := ts.rawRequest("PUT /chunked.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 400 ") || !strings.Contains(raw, "malformed_body") {
		t.Fatalf("malformed chunked body answered:\n%s", raw)
	}
	ts.do("GET", "/chunked.txt", nil, "").must(t, http.StatusNotFound)
}

// Over HTTP/2 a listing that fails after its 207 started is a reset stream: the
// client's read fails and it never sees the end of the multistatus.
func TestListingFailureHTTP2(t *testing.T) {
	root := t.TempDir()
	store, err := local.New(root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range 1500 {
		if err := os.WriteFile(fmt.Sprintf("%s/file-with-a-long-enough-name-%04d.txt", root, i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Backend: &failingList{Backend: store, after: 1400, err: fmt.Errorf("disk: %w", backend.ErrUnavailable)}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()
	req, _ := http.NewRequest("PROPFIND", hs.URL+"/", nil)
	req.Header.Set("Depth", "1")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil || strings.Contains(string(body), "</D:multistatus>") {
		t.Fatalf("read %d bytes, error %v: want a reset stream and no end tag", len(body), err)
	}
	t.Logf("%d bytes, then: %v", len(body), err)
}
