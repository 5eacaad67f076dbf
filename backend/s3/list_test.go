package s3

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"safedav/backend"
)

// fillFolder puts n small files into dir (created first) with safedav's own Put, so
// they carry its metadata as real uploads do.
func fillFolder(t testing.TB, s *Store, dir string, n int) {
	t.Helper()
	if _, err := s.Mkdir(t.Context(), dir, backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				body := "file " + strconv.Itoa(i)
				_, _, err := s.Put(t.Context(), fmt.Sprintf("%s/f%05d.txt", dir, i), strings.NewReader(body), backend.Cond{}, backend.Meta{Size: int64(len(body))})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// listFolder lists dir as the server's PROPFIND does: with the dead properties
// (ListProps when the store has it, else Props per member, as the server falls back
// to) or without. It returns the number of members.
func listFolder(ctx context.Context, s *Store, dir string, props bool) (int, error) {
	n := 0
	if !props {
		err := s.List(ctx, dir, func(backend.Info) error { n++; return nil })
		return n, err
	}
	if pl, ok := any(s).(backend.PropLister); ok {
		err := pl.ListProps(ctx, dir, func(backend.Info, []backend.Prop) error { n++; return nil })
		return n, err
	}
	err := s.List(ctx, dir, func(in backend.Info) error {
		n++
		_, err := s.Props(ctx, in.Name)
		return err
	})
	return n, err
}

// BenchmarkListFolder lists a folder of 2,000 files (SAFEDAV_BENCH_LIST_N to change)
// and reports the S3 requests one listing costs: without dead properties (PROPFIND of
// named live properties) and with them (allprop).
func BenchmarkListFolder(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("SAFEDAV_BENCH_LIST_N")); err == nil {
		n = v
	}
	s := newStore(b, testOptions(b))
	fillFolder(b, s, "/big", n)
	for _, props := range []bool{false, true} {
		b.Run(map[bool]string{false: "live", true: "allprop"}[props], func(b *testing.B) {
			var reqs atomic.Int64
			ctx := withCounter(b.Context(), &reqs)
			b.ReportAllocs()
			for b.Loop() {
				got, err := listFolder(ctx, s, "/big", props)
				if err != nil || got != n {
					b.Fatalf("listed %d of %d: %v", got, n, err)
				}
			}
			b.ReportMetric(float64(reqs.Load())/float64(b.N), "requests/op")
		})
	}
}

// A listing costs its pages plus one HEAD per member, whatever kind of member it is;
// ListProps adds one listing of the sidecars and one GET per member that has
// properties, never one per member.
func TestListRequests(t *testing.T) {
	opt := testOptions(t)
	opt.ListPageSize = 10
	s := newStore(t, opt)
	const files = 25
	fillFolder(t, s, "/d", files)
	if _, err := s.Mkdir(t.Context(), "/d/marked", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, "d/implicit/x", "x") // a collection without a marker
	for _, n := range []string{"/d/f00003.txt", "/d/marked"} {
		if err := s.PatchProps(t.Context(), n, backend.Cond{}, []backend.PropPatch{{Prop: backend.Prop{Name: xml.Name{Space: "urn:t", Local: "p"}, InnerXML: []byte("v")}}}); err != nil {
			t.Fatal(err)
		}
	}
	members := files + 2
	pages := (members + 1 + opt.ListPageSize - 1) / opt.ListPageSize // the members and /d's marker
	for _, tc := range []struct {
		name  string
		props bool
		want  int
	}{
		{"list", false, pages + members},
		{"list_props", true, pages + members + 1 + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs atomic.Int64
			ctx := withCounter(t.Context(), &reqs)
			withProps := 0
			n := 0
			var err error
			if tc.props {
				err = s.ListProps(ctx, "/d", func(in backend.Info, ps []backend.Prop) error {
					n++
					if len(ps) > 0 {
						withProps++
					}
					return nil
				})
			} else {
				n, err = listFolder(ctx, s, "/d", false)
			}
			if err != nil || n != members {
				t.Fatalf("listed %d of %d: %v", n, members, err)
			}
			if tc.props && withProps != 2 {
				t.Errorf("%d members with properties, want 2", withProps)
			}
			if got := int(reqs.Load()); got != tc.want {
				t.Errorf("%d requests, want %d", got, tc.want)
			}
		})
	}
}

// A listing holds a bounded number of members whatever the folder's size: the live
// heap while fn sees the last members is no larger than while it saw the first ones.
func TestListMemoryBounded(t *testing.T) {
	opt := testOptions(t)
	opt.ListPageSize = 50
	s := newStore(t, opt)
	const n = 1000
	// A long content type makes each member's Info weigh 3 KB: keeping the folder's
	// 1,000 members would add 3 MB, far above the noise of a few hundred KiB.
	ctype := "application/x-" + strings.Repeat("t", 3000)
	raw := rawClient(t)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				key := fmt.Sprintf("%sm/f%05d", s.prefix, i)
				if _, err := raw.PutObject(t.Context(), s.bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{ContentType: ctype}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC() // and what sync.Pools kept past the first
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var early, late uint64
	i := 0
	err := s.ListProps(t.Context(), "/m", func(in backend.Info, _ []backend.Prop) error {
		if in.ContentType != ctype {
			t.Fatalf("%s: content type of %d bytes, want %d", in.Name, len(in.ContentType), len(ctype))
		}
		i++
		switch i {
		case 100:
			early = heap()
		case n - 1:
			late = heap()
		}
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("listed %d of %d: %v", i, n, err)
	}
	t.Logf("live heap at member 100: %d KiB, at member %d: %d KiB", early>>10, n-1, late>>10)
	if late > early+512<<10 {
		t.Errorf("live heap grew by %d KiB over %d members", (late-early)>>10, n-100)
	}
}
