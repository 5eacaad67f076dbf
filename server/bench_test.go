package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/webdav"

	"safedav/backend/local"
	"safedav/coord"
	"safedav/locks"
)

const allpropBody = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`

// discard is a ResponseWriter that keeps nothing, so benchmarks measure the server.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func benchHandler(b *testing.B, sync bool) (*Server, string) {
	return benchHandlerWith(b, local.Options{Sync: sync})
}

func benchHandlerWith(b *testing.B, opt local.Options) (*Server, string) {
	root := b.TempDir()
	store, err := local.New(root, opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	s, err := New(Config{Backend: store})
	if err != nil {
		b.Fatal(err)
	}
	return s, root
}

func fill(b *testing.B, dir string, n int) {
	os.MkdirAll(dir, 0o755)
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d.txt", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPropfindDepth1 lists 10,000 files with allprop, on safedav (read from the
// disk each time, and served from the listing cache) and on the bare x/net/webdav
// Handler over the same kind of folder.
func BenchmarkPropfindDepth1(b *testing.B) {
	const files = 10000
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("PROPFIND", "/coll/", strings.NewReader(allpropBody))
			req.Header.Set("Depth", "1")
			h.ServeHTTP(&discard{h: make(http.Header)}, req)
		}
	}
	b.Run("safedav", func(b *testing.B) {
		s, root := benchHandlerWith(b, local.Options{Sync: true, ListCache: -1})
		fill(b, filepath.Join(root, "coll"), files)
		run(b, s)
	})
	b.Run("safedav-kept", func(b *testing.B) {
		s, root := benchHandler(b, true)
		fill(b, filepath.Join(root, "coll"), files)
		run(b, s)
	})
	b.Run("xnet-webdav", func(b *testing.B) {
		root := b.TempDir()
		fill(b, filepath.Join(root, "coll"), files)
		run(b, &webdav.Handler{FileSystem: webdav.Dir(root), LockSystem: webdav.NewMemLS()})
	})
}

// BenchmarkPutSmall is the whole path of a 4 KiB upload: parsing, conditions, locks,
// the atomic commit (with and without fsync).
func BenchmarkPutSmall(b *testing.B) {
	body := strings.Repeat("x", 4096)
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, _ := benchHandler(b, sync)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := httptest.NewRequest("PUT", fmt.Sprintf("/f%d", i%100), strings.NewReader(body))
				s.ServeHTTP(&discard{h: make(http.Header)}, req)
				i++
			}
		})
	}
}

// BenchmarkConditionalPut measures the If-Match path: Stat, precondition evaluation,
// lock check, conditional commit.
func BenchmarkConditionalPut(b *testing.B) {
	s, _ := benchHandler(b, false)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("PUT", "/hot", strings.NewReader("0")))
	etag := rec.Header().Get("ETag")
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("PUT", "/hot", strings.NewReader("1"))
		req.Header.Set("If-Match", etag)
		w := &discard{h: make(http.Header)}
		s.ServeHTTP(w, req)
		etag = w.h.Get("ETag")
	}
}

// BenchmarkGetSmall serves a small file.
func BenchmarkGetSmall(b *testing.B) {
	s, root := benchHandler(b, false)
	os.WriteFile(filepath.Join(root, "small"), []byte(strings.Repeat("y", 4096)), 0o644)
	b.ReportAllocs()
	for b.Loop() {
		s.ServeHTTP(&discard{h: make(http.Header)}, httptest.NewRequest("GET", "/small", nil))
	}
}

// BenchmarkPutSmallParallel is BenchmarkPutSmall from 32 concurrent clients, the shape
// of the harness's put-small: group commit shows here.
func BenchmarkPutSmallParallel(b *testing.B) {
	body := strings.Repeat("x", 4096)
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, _ := benchHandler(b, sync)
			var n atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					req := httptest.NewRequest("PUT", fmt.Sprintf("/f%d", i), strings.NewReader(body))
					s.ServeHTTP(&discard{h: make(http.Header)}, req)
				}
			})
		})
	}
}

// onLoopback runs bench against s served by its http.Server on a loopback listener.
// The figures include the client's work.
func onLoopback(b *testing.B, s *Server, bench func(b *testing.B, url string)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := s.HTTPServer()
	go hs.Serve(ln)
	defer hs.Close()
	bench(b, "http://"+ln.Addr().String())
}

// BenchmarkGetSmallHTTP serves a small file over a real loopback connection to 32
// concurrent clients, the shape of the harness's get-small.
func BenchmarkGetSmallHTTP(b *testing.B) {
	s, root := benchHandler(b, false)
	os.WriteFile(filepath.Join(root, "small"), []byte(strings.Repeat("y", 4096)), 0o644)
	onLoopback(b, s, func(b *testing.B, url string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		b.SetParallelism(16)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(url + "/small")
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("GET: %d", resp.StatusCode)
					return
				}
			}
		})
	})
}

// BenchmarkLockCycle is LOCK + PUT with the token + UNLOCK on fresh names from 32
// concurrent clients over loopback, the harness's lock-cycle.
func BenchmarkLockCycle(b *testing.B) {
	s, _ := benchHandler(b, true)
	var n atomic.Int64 // names stay fresh across the servers
	onLoopback(b, s, func(b *testing.B, url string) {
		lockCycles(b, url, &n)
	})
}

// BenchmarkLockCycleFileStore is BenchmarkLockCycle with the locks saved to a file
// before each answer, as serve does: concurrent changes share saves.
func BenchmarkLockCycleFileStore(b *testing.B) {
	root := b.TempDir()
	store, err := local.New(root, local.Options{Sync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	fs := locks.NewFileStore(filepath.Join(b.TempDir(), "locks.json"))
	fs.NoSync = true
	lm, err := locks.NewManager(locks.Options{Store: fs})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Backend: store, Locks: coord.LocalLocks(lm)})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	onLoopback(b, s, func(b *testing.B, url string) {
		lockCycles(b, url, &n)
	})
}

func lockCycles(b *testing.B, url string, n *atomic.Int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	// do answers whether the request got status want; RunParallel's goroutines may
	// not call b.Fatal, so failures are reported with b.Error.
	do := func(method, url string, hdr map[string]string, body string, want int) (*http.Response, bool) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return nil, false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Errorf("%s %s: %d, want %d", method, url, resp.StatusCode, want)
			return resp, false
		}
		return resp, true
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := fmt.Sprintf("%s/c%d", url, n.Add(1))
			lr, ok := do("LOCK", u, map[string]string{"Timeout": "Second-60", "Depth": "0"}, lockBody, http.StatusCreated)
			if !ok {
				return
			}
			tok := lr.Header.Get("Lock-Token")
			if _, ok := do("PUT", u, map[string]string{"If": "(" + tok + ")"}, "data", http.StatusNoContent); !ok {
				return
			}
			if _, ok := do("UNLOCK", u, map[string]string{"Lock-Token": tok}, "", http.StatusNoContent); !ok {
				return
			}
		}
	})
}

// BenchmarkGetSmallServer is a small GET over one loopback connection from a client
// that reuses one request and reads the answer into one buffer, so that allocs/op are
// the server's own.
func BenchmarkGetSmallServer(b *testing.B) {
	s, root := benchHandler(b, false)
	os.WriteFile(filepath.Join(root, "small"), []byte(strings.Repeat("y", 4096)), 0o644)
	onLoopback(b, s, func(b *testing.B, url string) {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		req := []byte("GET /small HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
		buf := make([]byte, 64<<10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			if err := readAnswer(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// readAnswer reads one response with a Content-Length body from c into buf, without
// allocating.
func readAnswer(c net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
		end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if end < 0 {
			continue
		}
		head := buf[:end]
		i := bytes.Index(head, []byte("Content-Length: "))
		if i < 0 || !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("answer %q", head)
		}
		cl := 0
		for _, d := range head[i+len("Content-Length: "):] {
			if d < '0' || d > '9' {
				break
			}
			cl = cl*10 + int(d-'0')
		}
		if n >= end+4+cl {
			return nil
		}
	}
}
