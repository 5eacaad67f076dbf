package s3

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
