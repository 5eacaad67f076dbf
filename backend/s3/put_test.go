package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
)

// requestCounter counts the S3 requests a store sends, by kind.
type requestCounter struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  map[string]int
}

// countRequests makes opt's store count its requests in the returned counter.
func countRequests(opt *Options) *requestCounter {
	c := &requestCounter{n: make(map[string]int)}
	opt.wrapTransport = func(rt http.RoundTripper) http.RoundTripper { c.rt = rt; return c }
	return c
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[requestKind(r)]++
	c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

// requestKind names the S3 operation of r.
func requestKind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && (q.Has("list-type") || q.Has("prefix")):
		return "LIST"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "PART"
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return "COPY"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "INITIATE"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "COMPLETE"
	}
	return r.Method
}

// take returns the counts since the last take, and resets them.
func (c *requestCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = make(map[string]int)
	return n
}

func total(n map[string]int) int {
	t := 0
	for _, v := range n {
		t += v
	}
	return t
}

func fmtCounts(n map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

// BenchmarkPutSmall is the small-upload workload of the shared harness: 32 clients
// at once, each storing new 4 KiB files in one folder. It reports the S3 requests
// of one Put beside allocs and B/op.
func BenchmarkPutSmall(b *testing.B) {
	opt := testOptions(b)
	reqs := countRequests(&opt)
	s := newStore(b, opt)
	if _, err := s.Mkdir(b.Context(), "/bench", backend.Cond{}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte{'x'}, 4<<10)
	var seq atomic.Int64
	reqs.take()
	b.SetParallelism(16) // 32 goroutines on 2 cores, the harness's 32 clients elsewhere
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("/bench/f-%d", seq.Add(1))
			_, _, err := s.Put(b.Context(), name, bytes.NewReader(body), backend.Cond{}, backend.Meta{Size: int64(len(body))})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	n := reqs.take()
	b.ReportMetric(float64(total(n))/float64(b.N), "requests/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "PUT/s")
	b.Logf("N=%d requests: %s", b.N, fmtCounts(n))
}

// barrierBody yields size bytes, pausing once at offset at until every body of its
// group has reached it, so the uploads of the group are all in flight at once.
type barrierBody struct {
	size, at, off int64
	group         *sync.WaitGroup
	waited        bool
}

func (r *barrierBody) Read(p []byte) (int, error) {
	if r.off == r.at && !r.waited {
		r.waited = true
		r.group.Done()
		r.group.Wait()
	}
	if r.off == r.size {
		return 0, io.EOF
	}
	end := r.size
	if !r.waited {
		end = r.at
	}
	n := min(int64(len(p)), end-r.off)
	clear(p[:n])
	r.off += n
	return int(n), nil
}

// Each upload holds a buffer of its own size, not a part: 32 concurrent 4 KiB Puts
// (announced or chunked) hold 32 × 4 KiB of buffers at their peak, and allocate a few
// MiB in all; a large body holds one part buffer, and a chunked one also the buffer
// it grows out of for the instant of the copy.
func TestPutMemory(t *testing.T) {
	for _, tc := range []struct {
		name     string
		uploads  int
		size     int64
		chunked  bool
		maxPeak  int64  // bytes of pooled buffers held at once
		maxAlloc uint64 // bytes allocated by the uploads in all, 0: not checked
	}{
		{"32x4KiB", 32, 4 << 10, false, 32 * 4 << 10, 8 << 20},
		{"32x4KiB_chunked", 32, 4 << 10, true, 32 * 4 << 10, 8 << 20},
		{"32x5000B_chunked", 32, 5000, true, 32 * (4 + 8) << 10, 8 << 20},
		{"4x3parts", 4, 2*MinPartSize + 1, false, 4 * MinPartSize, 0},
		// The 4 MiB buffer a chunked body grows out of into the 5 MiB part.
		{"4x3parts_chunked", 4, 2*MinPartSize + 1, true, 4 * (MinPartSize + 4<<20), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := testOptions(t)
			opt.PartSize = MinPartSize
			s := newStore(t, opt)
			ctx := t.Context()
			put1 := func(name string, body io.Reader) {
				size := tc.size
				if tc.chunked {
					size = -1
				}
				if _, _, err := s.Put(ctx, name, body, backend.Cond{}, backend.Meta{Size: size}); err != nil {
					t.Error(err)
				}
			}
			put1("/warm", io.LimitReader(zeros{}, tc.size)) // connections, the bucket's location
			s.bufs.peak.Store(0)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var group, wg sync.WaitGroup
			group.Add(tc.uploads)
			at := tc.size // a small body waits at its end
			if tc.size > MinPartSize {
				at = MinPartSize + 1 // within the second part
			}
			for i := range tc.uploads {
				wg.Go(func() { put1(fmt.Sprintf("/f%d", i), &barrierBody{size: tc.size, at: at, group: &group}) })
			}
			wg.Wait()
			runtime.ReadMemStats(&after)
			if peak := s.bufs.peak.Load(); peak > tc.maxPeak {
				t.Errorf("buffers held at once: %d bytes, want at most %d", peak, tc.maxPeak)
			}
			if held := s.bufs.held.Load(); held != 0 {
				t.Errorf("%d bytes of buffers not returned", held)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("peak buffers %d KiB, allocated %d KiB in all (%d KiB per upload)",
				s.bufs.peak.Load()>>10, alloc>>10, alloc>>10/uint64(tc.uploads))
			if tc.maxAlloc > 0 && alloc > tc.maxAlloc {
				t.Errorf("%d uploads allocated %d KiB, want at most %d KiB", tc.uploads, alloc>>10, tc.maxAlloc>>10)
			}
		})
	}
}

// A body of at most one part, announced or chunked, is stored with one PutObject
// under the claim, after the fewest lookups that decide the write: a HEAD of the
// name, and for a new name the parent's lookup (two HEADs) and one list for a
// collection at the name. Only a longer body goes multipart, checked before its
// upload starts and again under the claim.
func TestPutRequests(t *testing.T) {
	opt := testOptions(t)
	opt.PartSize = MinPartSize
	reqs := countRequests(&opt)
	s := newStore(t, opt)
	ctx := t.Context()
	if _, err := s.Mkdir(ctx, "/d", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	small := bytes.Repeat([]byte{'s'}, 4<<10)
	put := func(name string, body []byte, c backend.Cond, size int64) error {
		_, _, err := s.Put(ctx, name, bytes.NewReader(body), c, backend.Meta{Size: size})
		return err
	}
	a, _, err := s.Put(ctx, "/d/a", bytes.NewReader(small), backend.Cond{}, backend.Meta{Size: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, MinPartSize)
	newName := map[string]int{"HEAD": 3, "LIST": 1, "PUT": 1}
	for _, tc := range []struct {
		name string
		op   func() error
		want map[string]int
	}{
		{"new_in_root", func() error { return put("/r", small, backend.Cond{}, 4<<10) },
			map[string]int{"HEAD": 1, "LIST": 1, "PUT": 1}},
		{"new_in_folder", func() error { return put("/d/n", small, backend.Cond{}, 4<<10) }, newName},
		{"new_chunked", func() error { return put("/d/c", small, backend.Cond{}, -1) }, newName},
		{"create_only [RFC9110 13.1.2]", func() error { return put("/d/o", small, backend.Cond{IfNoneMatch: true}, 4<<10) }, newName},
		{"replace", func() error { return put("/d/a", small, backend.Cond{}, 4<<10) },
			map[string]int{"HEAD": 1, "PUT": 1}},
		{"replace_if_match [RFC9110 13.1.1]", func() error {
			cur, err := s.Stat(ctx, "/d/a")
			if err != nil {
				return err
			}
			reqs.take()
			return put("/d/a", small, backend.Cond{IfMatch: cur.ETag}, 4<<10)
		}, map[string]int{"HEAD": 1, "PUT": 1}},
		{"one_part_exactly", func() error { return put("/d/p", part, backend.Cond{}, MinPartSize) }, newName},
		{"one_part_exactly_chunked", func() error { return put("/d/pc", part, backend.Cond{}, -1) }, newName},
		{"create_free_name", func() error {
			_, err := s.Create(ctx, slices.Values([]string{"/d/g"}), bytes.NewReader(small), backend.Meta{Size: 4 << 10})
			return err
		}, newName},
		{"create_taken_then_free", func() error {
			_, err := s.Create(ctx, slices.Values([]string{a.Name, "/d/h"}), bytes.NewReader(small), backend.Meta{Size: -1})
			return err
		}, map[string]int{"HEAD": 4, "LIST": 1, "PUT": 1}},
		{"two_parts_chunked", func() error { return put("/d/big", append(part, 'x'), backend.Cond{}, -1) },
			map[string]int{"HEAD": 6, "LIST": 2, "INITIATE": 1, "PART": 2, "COMPLETE": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs.take()
			if err := tc.op(); err != nil {
				t.Fatal(err)
			}
			if got := reqs.take(); !maps.Equal(got, tc.want) {
				t.Errorf("requests %s, want %s", fmtCounts(got), fmtCounts(tc.want))
			}
		})
	}
	if n := incompleteUploads(t, s); n != 0 {
		t.Errorf("%d incomplete uploads left", n)
	}
}

// S3 stores a PutObject only once its whole Content-Length has arrived: a body that
// ends early fails the request and leaves the old version (or nothing) in place,
// whether minio-go signs the payload in chunks or not. (Put reads the whole body
// before its PutObject anyway; this is what makes the single request safe if a
// body were ever streamed.)
func TestShortBodyNeverStored(t *testing.T) {
	opt := testOptions(t)
	opt.MaxRetries = 1 // the failure is the body's: no use sending it again
	s := newStore(t, opt)
	ctx := t.Context()
	putRaw(t, s, "f", "old content")
	for _, unsigned := range []bool{false, true} {
		for _, key := range []string{"f", "new"} {
			opts := minio.PutObjectOptions{DisableContentSha256: unsigned}
			_, err := s.core.PutObject(ctx, s.bucket, s.prefix+key, strings.NewReader("short"), 100, "", "", opts)
			if err == nil {
				t.Errorf("unsigned=%v: PutObject of %s with 5 of 100 bytes succeeded", unsigned, key)
			}
		}
	}
	if got := string(readAll(t, s, "/f")); got != "old content" {
		t.Errorf("/f holds %q after short PutObjects", got)
	}
	if _, err := s.Stat(ctx, "/new"); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("/new after a short PutObject: %v", err)
	}
}
