//go:build !safedav_portable

package local

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"safedav/backend"
)

// A reader that opened a version keeps reading that version: replacing a file is a
// rename, so an open descriptor never sees another upload. Store.Open answers names
// stored in NFD (and other careful-path cases) with an *os.File, which GET with a Range
// (http.ServeContent seeks to the end) and COPY read after the open.
func TestOpenReaderKeepsItsVersion(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, false)
	nfd, nfc := "cafe\u0301.txt", "/caf\u00e9.txt"
	mustDo(t, os.WriteFile(filepath.Join(root, nfd), nil, 0o644)) // empty, stored in NFD by another tool
	r, info, err := s.Open(t.Context(), nfc)
	mustDo(t, err)
	defer r.Close()
	if info.Size != 0 {
		t.Fatalf("opened size %d", info.Size)
	}
	put(t, s, nfc, "new version")
	put(t, s, "/other", "SECRET OF ANOTHER RESOURCE")
	end, err := r.Seek(0, io.SeekEnd) // as http.ServeContent measures a Range GET
	mustDo(t, err)
	_, err = r.Seek(0, io.SeekStart)
	mustDo(t, err)
	b, err := io.ReadAll(r)
	mustDo(t, err)
	if end != 0 || len(b) != 0 {
		t.Errorf("reader of the empty version of %s now has size %d and reads %q: another upload's bytes", nfc, end, b)
	}
}

// Without openat2 (or when it fails, as it does with EAGAIN or ENOENT while a parent is
// renamed), readProps opens the entry through os.Root: with O_NONBLOCK, or a PUT over
// a symlink to a FIFO (located by path, so its properties are read by path) would hang
// under the commit lock.
func TestReadPropsFIFO(t *testing.T) {
	root := t.TempDir()
	s := withoutOpenat2(newStore(t, root, false))
	mustDo(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	mustDo(t, os.Symlink("fifo", filepath.Join(root, "f")))
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Put(t.Context(), "/f", strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1})
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Error("PUT over a symlink to a FIFO hangs in readProps")
		fd, err := unix.Open(filepath.Join(root, "fifo"), unix.O_RDWR|unix.O_NONBLOCK, 0)
		mustDo(t, err)
		defer unix.Close(fd)
		<-done
	}
}

// Concurrent LOCKs, PUTs, GETs and DELETEs on a few names: a GET of a name returns
// empty content or content written to that name, whole, with the size it reports.
func TestConcurrentContent(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root, false)
	ctx := t.Context()
	names := []string{"/n0", "/n1", "/n2", "/n3", "/d/n4", "/d/n5"}
	mustDo(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 6 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for seq := 0; time.Now().Before(deadline); seq++ {
				name := names[rnd.IntN(len(names))]
				switch rnd.IntN(5) {
				case 0:
					s.Put(ctx, name, strings.NewReader(""), backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 0, Volatile: true})
				case 1, 2:
					body := name + "|" + strconv.Itoa(g) + "|" + strconv.Itoa(seq) + "|" + strings.Repeat("z", rnd.IntN(3000))
					s.Put(ctx, name, strings.NewReader(body), backend.Cond{}, backend.Meta{Size: int64(len(body))})
				case 3:
					r, info, err := s.Open(ctx, name)
					if err != nil {
						continue
					}
					b, _ := io.ReadAll(r)
					r.Close()
					if int64(len(b)) != info.Size || len(b) > 0 && !strings.HasPrefix(string(b), name+"|") {
						bad.Add(1)
						t.Errorf("GET %s: size %d, read %d bytes %.40q", name, info.Size, len(b), b)
					}
				case 4:
					s.Remove(ctx, name, backend.Cond{})
				}
			}
		})
	}
	wg.Wait()
}
