package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"safedav/backend"
	"safedav/backend/local"
)

// synthFolder is a store whose /big holds n generated files, listed without any I/O,
// so a test can watch what the server keeps while it streams a large listing. visit
// is called after each member is handed on.
type synthFolder struct {
	backend.Backend
	n     int
	visit func(i int)
}

func (f *synthFolder) Stat(ctx context.Context, name string) (backend.Info, error) {
	if name == "/big" {
		return backend.Info{Name: name, Dir: true, ETag: `"big"`}, nil
	}
	return f.Backend.Stat(ctx, name)
}

func (f *synthFolder) List(ctx context.Context, dir string, fn func(backend.Info) error) error {
	if dir != "/big" {
		return f.Backend.List(ctx, dir, fn)
	}
	long := strings.Repeat("n", 200) // a kilobyte or so per member in the answer
	for i := range f.n {
		name := fmt.Sprintf("/big/%s%06d.txt", long, i)
		if err := fn(backend.Info{Name: name, Size: int64(i), ETag: fmt.Sprintf(`"%d"`, i)}); err != nil {
			return err
		}
		f.visit(i)
	}
	return nil
}

// A PROPFIND Depth 1 streams its members: the live heap while the last members are
// answered is no larger than while the first ones were, whatever the folder's size
// (20,000 members of about a kilobyte each would add some 20 MiB if kept).
func TestPropfindMemoryBounded(t *testing.T) {
	store, err := local.New(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	const n = 20000
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var early, late uint64
	f := &synthFolder{Backend: store, n: n, visit: func(i int) {
		switch i {
		case 1000: // past the first 128 KiB, so the 207 is streaming
			early = heap()
		case n - 1:
			late = heap()
		}
	}}
	s, err := New(Config{Backend: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{allpropBody, ""} {
		w := &discard{h: make(http.Header)}
		req := httptest.NewRequest("PROPFIND", "/big/", strings.NewReader(body))
		req.Header.Set("Depth", "1")
		s.ServeHTTP(w, req)
		t.Logf("live heap at member 1000: %d KiB, at member %d: %d KiB", early>>10, n-1, late>>10)
		if late > early+1<<20 {
			t.Errorf("live heap grew by %d KiB over %d members", (late-early)>>10, n-1000)
		}
	}
}
