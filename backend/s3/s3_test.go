package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
	"safedav/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newStore(t, testOptions(t))
	})
}

func TestConditionalWritesProbe(t *testing.T) {
	s := newStore(t, testOptions(t))
	if !s.ConditionalWrites() {
		t.Error("versitygw honours If-None-Match, but ConditionalWrites() = false")
	}
	// The probe leaves nothing behind.
	if keys := rawKeys(t, s, s.prefix); len(keys) != 0 {
		t.Errorf("after New: %q", keys)
	}
}

// rawKeys lists every key under prefix with a plain client.
func rawKeys(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	var keys []string
	for oi := range rawClient(t).ListObjects(t.Context(), s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

// incompleteUploads counts the multipart uploads left open under the store's prefix.
func incompleteUploads(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	for u := range rawClient(t).ListIncompleteUploads(t.Context(), s.bucket, s.prefix, true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

func putRaw(t *testing.T, s *Store, key, body string) {
	t.Helper()
	_, err := rawClient(t).PutObject(t.Context(), s.bucket, s.prefix+key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, s *Store, name string) []byte {
	t.Helper()
	rc, _, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}

func listNames(t *testing.T, s *Store, dir string) []string {
	t.Helper()
	var out []string
	if err := s.List(t.Context(), dir, func(in backend.Info) error { out = append(out, in.Name); return nil }); err != nil {
		t.Fatalf("List(%s): %v", dir, err)
	}
	slices.Sort(out)
	return out
}

// Objects written by another tool, without collection markers, are collections
// all the same: listed, statted, writable into, removable.
func TestImplicitCollections(t *testing.T) {
	s := newStore(t, testOptions(t))
	ctx := t.Context()
	putRaw(t, s, "imp/sub/f", "deep")
	putRaw(t, s, "imp/g", "g")
	putRaw(t, s, "top", "t")

	if got, want := listNames(t, s, "/"), []string{"/imp", "/top"}; !slices.Equal(got, want) {
		t.Errorf("List(/) = %q, want %q", got, want)
	}
	if got, want := listNames(t, s, "/imp"), []string{"/imp/g", "/imp/sub"}; !slices.Equal(got, want) {
		t.Errorf("List(/imp) = %q, want %q", got, want)
	}
	for _, n := range []string{"/imp", "/imp/sub"} {
		in, err := s.Stat(ctx, n)
		if err != nil || !in.Dir {
			t.Errorf("Stat(%s) = %+v, %v; want an implicit collection", n, in, err)
		}
	}
	in, err := s.Stat(ctx, "/top")
	if err != nil || in.Dir || in.Size != 1 || in.ETag == "" {
		t.Errorf("Stat(/top) = %+v, %v", in, err)
	}
	if got := string(readAll(t, s, "/imp/sub/f")); got != "deep" {
		t.Errorf("content = %q", got)
	}
	if _, _, err := s.Put(ctx, "/imp/sub/new", strings.NewReader("n"), backend.Cond{}, backend.Meta{Size: 1}); err != nil {
		t.Errorf("Put into an implicit collection: %v", err)
	}
	if _, _, err := s.Put(ctx, "/imp", strings.NewReader("n"), backend.Cond{}, backend.Meta{Size: 1}); !errors.Is(err, backend.ErrIsCollection) {
		t.Errorf("Put onto an implicit collection: %v, want ErrIsCollection", err)
	}
	if _, err := s.Mkdir(ctx, "/imp/sub", backend.Cond{}); !errors.Is(err, backend.ErrExist) {
		t.Errorf("Mkdir of an implicit collection: %v, want ErrExist", err)
	}
	// Dead properties of an implicit collection, and their sidecar stays hidden.
	p := backend.Prop{Name: xml.Name{Space: "urn:x", Local: "p"}, InnerXML: []byte("v")}
	if err := s.PatchProps(ctx, "/imp", backend.Cond{}, []backend.PropPatch{{Prop: p}}); err != nil {
		t.Fatal(err)
	}
	if got, want := listNames(t, s, "/"), []string{"/imp", "/top"}; !slices.Equal(got, want) {
		t.Errorf("List(/) with a sidecar = %q, want %q", got, want)
	}
	if err := s.Remove(ctx, "/imp", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, s, s.prefix); !slices.Equal(keys, []string{s.prefix + "top"}) {
		t.Errorf("after Remove(/imp): keys %q", keys)
	}
}

// A body larger than PartSize goes through the multipart upload, whose conditional
// Complete keeps create-only and If-Match writes atomic.
func TestMultipartConditional(t *testing.T) {
	opt := testOptions(t)
	opt.PartSize = MinPartSize
	s := newStore(t, opt)
	ctx := t.Context()
	body := func(b byte) []byte { return bytes.Repeat([]byte{b}, 12<<20) }
	for _, size := range []int64{12 << 20, -1} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			name := "/big" + strconv.FormatInt(size, 10)
			in, created, err := s.Put(ctx, name, bytes.NewReader(body('a')), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: size})
			if err != nil || !created {
				t.Fatalf("create = %v, %v", created, err)
			}
			if !strings.Contains(in.ETag, "-3.") {
				t.Errorf("ETag %s is not that of a 3-part upload", in.ETag)
			}
			_, _, err = s.Put(ctx, name, bytes.NewReader(body('b')), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: size})
			if !errors.Is(err, backend.ErrPrecondition) {
				t.Errorf("create-only onto an existing object: %v, want ErrPrecondition", err)
			}
			_, _, err = s.Put(ctx, name, bytes.NewReader(body('c')), backend.Cond{IfMatch: `"nope.x"`}, backend.Meta{Size: size})
			if !errors.Is(err, backend.ErrPrecondition) {
				t.Errorf("wrong If-Match: %v, want ErrPrecondition", err)
			}
			if got := readAll(t, s, name); !bytes.Equal(got, body('a')) {
				t.Errorf("the object changed after failed conditional writes")
			}
			if cur, _ := s.Stat(ctx, name); cur.ETag != in.ETag {
				t.Errorf("ETag %s, want %s", cur.ETag, in.ETag)
			}
			in2, created, err := s.Put(ctx, name, bytes.NewReader(body('d')), backend.Cond{IfMatch: in.ETag}, backend.Meta{Size: size})
			if err != nil || created || in2.ETag == in.ETag {
				t.Errorf("If-Match right = %+v, %v, %v", in2, created, err)
			}
			if got := readAll(t, s, name); !bytes.Equal(got, body('d')) {
				t.Errorf("If-Match write did not land")
			}
			if n := incompleteUploads(t, s); n != 0 {
				t.Errorf("%d incomplete uploads left", n)
			}
		})
	}
}

// failAfter yields n bytes and then fails, calling before first.
type failAfter struct {
	n      int
	before func()
}

var errBody = errors.New("body failed")

func (r *failAfter) Read(p []byte) (int, error) {
	if r.n == 0 {
		if r.before != nil {
			r.before()
		}
		return 0, errBody
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

// A failed or cancelled multipart upload is aborted: no parts stay behind, and
// nothing is committed.
func TestNoOrphanedUploads(t *testing.T) {
	opt := testOptions(t)
	opt.PartSize = MinPartSize
	s := newStore(t, opt)
	var sawOpen atomic.Bool
	check := func() { sawOpen.Store(incompleteUploads(t, s) > 0) }

	_, _, err := s.Put(t.Context(), "/f", &failAfter{n: 7 << 20, before: check}, backend.Cond{}, backend.Meta{Size: -1})
	if !errors.Is(err, errBody) {
		t.Errorf("Put with a failing body: %v", err)
	}
	if !sawOpen.Load() {
		t.Error("the failing body did not reach the multipart upload")
	}

	ctx, cancel := context.WithCancel(t.Context())
	reads := 0
	body := readerFunc(func(p []byte) (int, error) {
		if reads++; reads == 2 {
			check()
			cancel()
		}
		clear(p)
		return len(p), nil
	})
	_, _, err = s.Put(ctx, "/g", body, backend.Cond{}, backend.Meta{Size: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with ctx cancelled: %v", err)
	}

	// Create with a body larger than a part stages it; the staging object goes too.
	_, err = s.Create(t.Context(), slices.Values([]string{"/c"}), &failAfter{n: 6 << 20}, backend.Meta{Size: -1})
	if !errors.Is(err, errBody) {
		t.Errorf("Create with a failing body: %v", err)
	}
	in, err := s.Create(t.Context(), slices.Values([]string{"/c"}), bytes.NewReader(make([]byte, 6<<20)), backend.Meta{Size: 6 << 20})
	if err != nil || in.Name != "/c" || in.Size != 6<<20 {
		t.Errorf("Create of a large body = %+v, %v", in, err)
	}
	in, err = s.Create(t.Context(), slices.Values([]string{"/c", "/c1"}), bytes.NewReader(make([]byte, 6<<20)), backend.Meta{Size: 6 << 20})
	if err != nil || in.Name != "/c1" {
		t.Errorf("Create of a large body onto a taken name = %+v, %v", in, err)
	}

	if n := incompleteUploads(t, s); n != 0 {
		t.Errorf("%d incomplete uploads left", n)
	}
	if keys := rawKeys(t, s, s.prefix); !slices.Equal(keys, []string{s.prefix + "c", s.prefix + "c1"}) {
		t.Errorf("keys left: %q", keys)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Remove of a collection of more keys than one DeleteObjects request takes.
func TestRemoveBigCollection(t *testing.T) {
	s := newStore(t, testOptions(t))
	ctx := t.Context()
	if _, err := s.Mkdir(ctx, "/big", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	const n = 1100
	c := rawClient(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			key := fmt.Sprintf("%sbig/d%d/f%04d", s.prefix, i%3, i)
			if _, err := c.PutObject(ctx, s.bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, _, err := s.Put(ctx, "/keep", strings.NewReader("k"), backend.Cond{}, backend.Meta{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "/big", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, s, s.prefix); !slices.Equal(keys, []string{s.prefix + "keep"}) {
		t.Errorf("%d keys left, want only keep", len(keys))
	}
}

func TestNewErrors(t *testing.T) {
	requireServer(t)
	ctx := t.Context()
	base := testOptions(t)

	bad := base
	bad.SecretKey = "not-the-secret-9f3a"
	_, err := New(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "credentials rejected by "+base.Endpoint) {
		t.Errorf("wrong secret: %v", err)
	} else if strings.Contains(err.Error(), bad.SecretKey) || strings.Contains(err.Error(), base.SecretKey) {
		t.Errorf("error leaks the secret: %v", err)
	}
	bad = base
	bad.AccessKey = "nosuchkey"
	if _, err := New(ctx, bad); err == nil || !strings.Contains(err.Error(), "credentials rejected") {
		t.Errorf("unknown access key: %v", err)
	}

	bad = base
	bad.Bucket = "no-such-bucket-" + newVersion()
	if _, err := New(ctx, bad); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}

	port, err := freePort() // closed again: nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	bad = base
	bad.Endpoint = "127.0.0.1:" + port
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := New(cctx, bad); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("closed port: %v", err)
	}

	bad = base
	bad.PartSize = 1 << 20
	if _, err := New(ctx, bad); err == nil {
		t.Error("PartSize under 5 MiB accepted")
	}
}

// Two stores on one bucket and prefix stand for two safedav processes: the server's
// conditional writes decide between them, not a mutex.
func TestTwoInstances(t *testing.T) {
	backendtest.RunShared(t, func(t *testing.T) []backend.Backend {
		opt := testOptions(t)
		return []backend.Backend{newStore(t, opt), newStore(t, opt)}
	})
}

// http.ServeContent seeks to the end and back, then to the range: the reader must
// not fetch the object more than needed.
func TestServeContentRange(t *testing.T) {
	s := newStore(t, testOptions(t))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	in, _, err := s.Put(t.Context(), "/r", bytes.NewReader(data), backend.Cond{}, backend.Meta{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rng        string
		start, end int // want data[start:end]
		gets       int
	}{
		{"", 0, len(data), 1},
		{"bytes=1000-1999", 1000, 2000, 2},
		{"bytes=0-9", 0, 10, 1},
	} {
		rc, info, err := s.Open(t.Context(), "/r")
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/r", nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		w := httptest.NewRecorder()
		w.Header().Set("ETag", info.ETag)
		w.Header().Set("Content-Type", "application/octet-stream") // as the server sets it: no sniffing
		http.ServeContent(w, req, "r", info.ModTime, rc)
		rc.Close()
		if !bytes.Equal(w.Body.Bytes(), data[tc.start:tc.end]) {
			t.Errorf("Range %q: got %d bytes (status %d), want data[%d:%d]", tc.rng, w.Body.Len(), w.Code, tc.start, tc.end)
		}
		if got := rc.(*objectReader).gets; got != tc.gets {
			t.Errorf("Range %q: %d GETs, want %d", tc.rng, got, tc.gets)
		}
	}
	if info, _ := s.Stat(t.Context(), "/r"); info.ETag != in.ETag {
		t.Errorf("ETag %s, want %s", info.ETag, in.ETag)
	}
}

// The ETag combines the S3 ETag, which depends on the content only, with the
// version of the write.
func TestETagDesign(t *testing.T) {
	s := newStore(t, testOptions(t))
	put := func() backend.Info {
		in, _, err := s.Put(t.Context(), "/e", strings.NewReader("same"), backend.Cond{}, backend.Meta{Size: 4})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	a, b := put(), put()
	sa, _, _ := strings.Cut(a.ETag, ".")
	sb, _, _ := strings.Cut(b.ETag, ".")
	if a.ETag == b.ETag || sa != sb {
		t.Errorf("ETags %s and %s: want the same S3 part and different versions", a.ETag, b.ETag)
	}
	// An object written by another tool has the plain S3 ETag, and conditions on it work.
	putRaw(t, s, "foreign", "f")
	in, err := s.Stat(t.Context(), "/foreign")
	if err != nil || strings.Contains(in.ETag, ".") {
		t.Fatalf("Stat(/foreign) = %+v, %v", in, err)
	}
	if _, _, err := s.Put(t.Context(), "/foreign", strings.NewReader("g"), backend.Cond{IfMatch: in.ETag}, backend.Meta{Size: 1}); err != nil {
		t.Errorf("If-Match on a foreign object: %v", err)
	}
}

func TestMapErr(t *testing.T) {
	for _, tc := range []struct {
		code string
		want error
	}{
		{"NoSuchKey", backend.ErrNotExist},
		{"PreconditionFailed", backend.ErrPrecondition},
		{"ConditionalRequestConflict", backend.ErrPrecondition},
		{"EntityTooLarge", backend.ErrNoSpace},
		{"QuotaExceeded", backend.ErrNoSpace},
		{"AccessDenied", errAccess},
		{"AccessDenied", backend.ErrForbidden},
		{"InvalidAccessKeyId", backend.ErrForbidden},
		{"SlowDown", backend.ErrUnavailable},
		{"ServiceUnavailable", backend.ErrUnavailable},
		{"InternalError", backend.ErrUnavailable},
		{"KeyTooLongError", backend.ErrNameTooLong},
	} {
		if err := mapErr(minio.ErrorResponse{Code: tc.code}); !errors.Is(err, tc.want) {
			t.Errorf("%s → %v, want %v", tc.code, err, tc.want)
		}
	}
	if err := mapErr(context.Canceled); err != context.Canceled {
		t.Errorf("context error changed: %v", err)
	}
	if err := mapErr(io.EOF); err != io.EOF {
		t.Errorf("io.EOF changed: %v", err)
	}
}

// TestMapErrUnavailable: whatever keeps an answer from the S3 server (a refused or
// reset connection, a timeout, a response cut short, a 5xx without a known code) is
// ErrUnavailable, never an error the server would answer 500.
func TestMapErrUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"refused", &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}},
		{"reset", &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}},
		{"timeout", &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b", Err: os.ErrDeadlineExceeded}},
		{"deadline", context.DeadlineExceeded},
		{"cut_short", io.ErrUnexpectedEOF},
		{"http_502", minio.ErrorResponse{StatusCode: http.StatusBadGateway}},
		{"http_503_unknown_code", minio.ErrorResponse{StatusCode: http.StatusServiceUnavailable, Code: "Whatever"}},
		{"http_429", minio.ErrorResponse{StatusCode: http.StatusTooManyRequests}},
	} {
		if err := mapErr(tc.err); !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", tc.name, err)
		}
	}
	if err := mapErr(minio.ErrorResponse{StatusCode: http.StatusBadRequest, Code: "InvalidArgument"}); errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("a 400 is not the store being unavailable: %v", err)
	}
}

// A name whose sidecar key would pass S3's 1024 bytes is refused before any request.
func TestNameTooLongForKey(t *testing.T) {
	s := &Store{prefix: "p/"}
	seg := strings.Repeat("a", 200)
	long := "/" + strings.Repeat(seg+"/", 5) + seg // 6 segments of 200 bytes: 1206 bytes
	if err := s.checkName(long); !errors.Is(err, backend.ErrNameTooLong) {
		t.Errorf("1206-byte name: %v", err)
	}
	if err := s.checkName("/" + strings.Repeat("a", 256)); !errors.Is(err, backend.ErrNameTooLong) {
		t.Errorf("256-byte segment: %v", err)
	}
	if err := s.checkName("/" + strings.Repeat("a", 255)); err != nil {
		t.Errorf("255-byte segment: %v", err)
	}
}

// BenchmarkPutLarge uploads one large body (256 MiB, or 2 GiB with
// SAFEDAV_BENCH_LARGE=1) and reports the peak heap, which must stay near one part
// buffer whatever the size.
func BenchmarkPutLarge(b *testing.B) {
	size := int64(256 << 20)
	if os.Getenv("SAFEDAV_BENCH_LARGE") == "1" {
		size = 2 << 30
	}
	s := newStore(b, testOptions(b))
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	b.SetBytes(size)
	for b.Loop() {
		if _, _, err := s.Put(b.Context(), "/large", io.LimitReader(zeros{}, size), backend.Cond{}, backend.Meta{Size: -1}); err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A process killed mid-upload leaves a multipart upload and perhaps a staging object;
// the next New removes them once idle for longer than any upload still running.
func TestSweepLeftovers(t *testing.T) {
	opt := testOptions(t)
	s := newStore(t, opt)
	ctx := t.Context()
	key := s.prefix + "orphan.bin"
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	staging := s.stagingDir() + "other-instance/" + newVersion()
	if _, err := s.core.PutObject(ctx, s.bucket, staging, strings.NewReader("x"), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	count := func() (uploads, objects int) {
		for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
			if u.Err == nil && u.UploadID == id {
				uploads++
			}
		}
		for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: staging}) {
			if oi.Err == nil {
				objects++
			}
		}
		return
	}
	s.sweep(ctx, time.Now().Add(-time.Hour)) // too young: kept
	if u, o := count(); u != 1 || o != 1 {
		t.Fatalf("young leftovers removed: %d uploads, %d objects", u, o)
	}
	s.sweep(ctx, time.Now().Add(time.Hour)) // as if a day had passed
	if u, o := count(); u != 0 || o != 0 {
		t.Fatalf("after the sweep: %d uploads, %d objects left", u, o)
	}
}

// TestConditionalDeleteProbe: versitygw honours If-Match on DeleteObject (412 when the
// ETag differs), so file MOVEs delete their source conditionally against it, and the
// probe leaves nothing behind.
func TestConditionalDeleteProbe(t *testing.T) {
	s := newStore(t, testOptions(t))
	if !s.ConditionalDeletes() {
		t.Error("ConditionalDeletes() = false")
	}
	if keys := rawKeys(t, s, s.prefix); len(keys) != 0 {
		t.Errorf("after New: %q", keys)
	}
}

// TestMoveSourceChangedElsewhere: another process replaces a file between the copy of
// a MOVE and the delete of its source (which the claims of this process cannot see).
// The conditional delete fails, the copy is taken back, the MOVE fails with
// ErrPrecondition, and the other process's content stays at the source.
func TestMoveSourceChangedElsewhere(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, testOptions(t))
	put := func(name, body string) {
		t.Helper()
		if _, _, err := s.Put(ctx, name, strings.NewReader(body), backend.Cond{}, backend.Meta{Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	put("/x", "old")
	_, so, err := s.copy(ctx, "/x", "/y", backend.Cond{}, backend.DepthInfinity)
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, "x", "new") // the other process
	if err := s.moveAway(ctx, so, "/y"); !errors.Is(err, backend.ErrPrecondition) {
		t.Fatalf("moveAway: %v, want ErrPrecondition", err)
	}
	rc, _, err := s.Open(ctx, "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "new" {
		t.Errorf("/x = %q, want the other process's %q", b, "new")
	}
	if _, err := s.Stat(ctx, "/y"); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat(/y) = %v, want ErrNotExist (the copy taken back)", err)
	}
}
