package local

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"safedav/backend"
)

func newStore(t testing.TB, dir string, sync bool) *Store {
	t.Helper()
	s, err := New(dir, Options{Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// symlink makes a symbolic link, or skips the test where the user may not (Windows
// without developer mode).
func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		if runtime.GOOS == "windows" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

func put(t testing.TB, s *Store, name, content string) backend.Info {
	t.Helper()
	info, _, err := s.Put(context.Background(), name, strings.NewReader(content), backend.Cond{}, backend.Meta{Size: int64(len(content))})
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return info
}

func readFile(t *testing.T, s *Store, name string) string {
	t.Helper()
	rc, _, err := s.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testConfinement checks that symlinks leading out of the tree are never followed,
// whether relative or absolute, to a directory or to a file, by a Store that setup
// has prepared.
func testConfinement(t *testing.T, setup func(*Store)) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	root := filepath.Join(base, "root")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, root, true)
	setup(s)
	for link, target := range map[string]string{
		"reldir": "../outside", "absdir": outside, "absfile": secret, "relfile": "../outside/secret",
	} {
		symlink(t, target, filepath.Join(root, link))
	}
	// A symlink that stays inside is followed.
	put(t, s, "/inner", "inside")
	symlink(t, "inner", filepath.Join(root, "innerlink"))
	if got := readFile(t, s, "/innerlink"); got != "inside" {
		t.Errorf("inner symlink reads %q", got)
	}

	ctx := t.Context()
	for _, name := range []string{"/reldir", "/reldir/secret", "/absdir/secret", "/absfile", "/relfile"} {
		if _, err := s.Stat(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want ErrNotExist", name, err)
		}
		if _, _, err := s.Open(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := s.Props(ctx, name); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Props(%s) = %v, want ErrNotExist", name, err)
		}
		err := s.PatchProps(ctx, name, backend.Cond{}, []backend.PropPatch{{Prop: backend.Prop{Name: xmlName("p")}}})
		if !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("PatchProps(%s) = %v, want ErrNotExist", name, err)
		}
		if err := s.Remove(ctx, name+"/secret", backend.Cond{}); err == nil {
			t.Errorf("Remove(%s/secret) succeeded", name)
		}
		if _, err := s.Copy(ctx, name, "/copied", backend.Cond{}, backend.DepthInfinity); err == nil {
			t.Errorf("Copy(%s) succeeded", name)
		}
	}
	for _, name := range []string{"/reldir/new", "/absdir/new", "/absdir/secret", "/reldir/secret"} {
		_, _, err := s.Put(ctx, name, strings.NewReader("pwned"), backend.Cond{}, backend.Meta{Size: 5})
		if !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Put(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := s.Mkdir(ctx, name, backend.Cond{}); err == nil {
			t.Errorf("Mkdir(%s) succeeded", name)
		}
	}
	if err := s.List(ctx, "/reldir", func(backend.Info) error { return nil }); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("List(/reldir) = %v, want ErrNotExist", err)
	}
	var listed []string
	s.List(ctx, "/", func(in backend.Info) error { listed = append(listed, in.Name); return nil })
	slices.Sort(listed)
	if want := []string{"/inner", "/innerlink"}; !slices.Equal(listed, want) {
		t.Errorf("List(/) = %q, want %q (escaping links hidden)", listed, want)
	}
	// A tree copy skips links out of the tree.
	if _, err := s.Mkdir(ctx, "/d", backend.Cond{}); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(root, "d", "out"))
	if _, err := s.Copy(ctx, "/d", "/d2", backend.Cond{}, backend.DepthInfinity); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "d2", "out")); !os.IsNotExist(err) {
		t.Errorf("copy of a tree took its escaping link along: %v", err)
	}

	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside directory now holds %d entries", len(entries))
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Errorf("outside file changed to %q", b)
	}
}

func xmlName(local string) xml.Name { return xml.Name{Space: "urn:t", Local: local} }

// tempFiles lists the temporary entries left anywhere under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSweep checks that New removes temporary entries at any depth, and never through
// a symlink.
func TestSweep(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "a", "b"), outside, filepath.Join(root, tmpPrefix+"dir", "x")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{
		filepath.Join(root, tmpPrefix+"1"),
		filepath.Join(root, "a", "b", tmpPrefix+"2"),
		filepath.Join(root, tmpPrefix+"dir", "x", "y"),
		filepath.Join(root, "a", "keep"),
		filepath.Join(outside, tmpPrefix+"not-ours"),
	} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink(t, outside, filepath.Join(root, "a", "link"))
	symlink(t, ".", filepath.Join(root, "a", "loop"))
	newStore(t, root, true)
	if left := tempFiles(t, root); len(left) != 0 {
		t.Errorf("New left %q", left)
	}
	for _, f := range []string{filepath.Join(root, "a", "keep"), filepath.Join(outside, tmpPrefix+"not-ours")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("sweep removed %s: %v", f, err)
		}
	}
}

// TestCommitRace checks that a write losing the race between reading its body and
// committing fails with ErrPrecondition and leaves the winner's content.
func TestCommitRace(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	before := put(t, s, "/f", "v1")
	body := &hookReader{r: strings.NewReader("mine"), hook: func() { put(t, s, "/f", "v2") }}
	_, _, err := s.Put(t.Context(), "/f", body, backend.Cond{IfMatch: before.ETag}, backend.Meta{Size: 4})
	if !errors.Is(err, backend.ErrPrecondition) {
		t.Fatalf("Put = %v, want ErrPrecondition", err)
	}
	if got := readFile(t, s, "/f"); got != "v2" {
		t.Errorf("content %q, want the winner's v2", got)
	}
	body = &hookReader{r: strings.NewReader("mine"), hook: func() { put(t, s, "/g", "first") }}
	_, _, err = s.Put(t.Context(), "/g", body, backend.Cond{IfNoneMatch: true}, backend.Meta{Size: 4})
	if !errors.Is(err, backend.ErrPrecondition) {
		t.Fatalf("create-only Put = %v, want ErrPrecondition", err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// hookReader calls hook once, at the end of the body, to change the store mid-upload.
type hookReader struct {
	r    io.Reader
	hook func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF && h.hook != nil {
		h.hook()
		h.hook = nil
	}
	return n, err
}

// TestETags checks strong ETags that change on every write even when size and clock
// tick are the same, and only then.
func TestETags(t *testing.T) {
	s := newStore(t, t.TempDir(), false)
	seen := make(map[string]bool, 1000)
	for i := range 1000 {
		info := put(t, s, "/f", "same")
		if seen[info.ETag] {
			t.Fatalf("write %d repeated ETag %s", i, info.ETag)
		}
		seen[info.ETag] = true
	}
	a, _ := s.Stat(t.Context(), "/f")
	b, _ := s.Stat(t.Context(), "/f")
	if a != b {
		t.Errorf("Stat twice: %+v then %+v", a, b)
	}
	for _, d := range []string{"/", "/d"} {
		if d != "/" {
			s.Mkdir(t.Context(), d, backend.Cond{})
		}
		in, err := s.Stat(t.Context(), d)
		if err != nil || in.ETag == "" || !strings.HasPrefix(in.ETag, `"`) {
			t.Errorf("Stat(%s) = %+v, %v; want a collection ETag", d, in, err)
		}
	}
}

func TestEncodeProps(t *testing.T) {
	props := []backend.Prop{
		{Name: xmlName("a"), Lang: "de", InnerXML: []byte("<x>ü</x>")},
		{Name: xmlName(""), InnerXML: nil},
	}
	got, err := decodeProps(encodeProps(props))
	if err != nil || len(got) != 2 || got[0].Name != props[0].Name || got[0].Lang != "de" || string(got[0].InnerXML) != "<x>ü</x>" {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	// Truncations must fail or decode to a shorter list, never panic or invent data.
	enc := encodeProps(props)
	for i := 1; i < len(enc); i++ {
		if p, err := decodeProps(enc[:i]); err == nil && len(p) >= len(props) {
			t.Errorf("truncated encoding (%d of %d bytes) decoded to %d props", i, len(enc), len(p))
		}
	}
}

// zeros is an endless body of zeros, cheap to produce.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestPutMemory checks that the memory a Put allocates does not grow with the body.
func TestPutMemory(t *testing.T) {
	s := newStore(t, t.TempDir(), false)
	const size = 64 << 20
	put(t, s, "/warm", "x")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, _, err := s.Put(t.Context(), "/big", io.LimitReader(zeros{}, size), backend.Cond{}, backend.Meta{Size: size}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("a %d MiB Put allocated %d KiB", size>>20, got>>10)
	}
}

// TestListLargeFolder lists folders around and well above one stat batch, where the
// listing runs on worker goroutines: every entry comes exactly once with its own size,
// reserved names stay hidden, and a callback error stops the listing and is returned.
func TestListLargeFolder(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	for _, n := range []int{0, 1, dirBatch - 1, dirBatch, dirBatch + 1, 5*dirBatch + 17} {
		folder := fmt.Sprintf("/f%d", n)
		if err := os.Mkdir(filepath.Join(dir, folder), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := os.WriteFile(filepath.Join(dir, folder, fmt.Sprintf("m%05d", i)), make([]byte, i%7), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(dir, folder, backend.ReservedPrefix+"-x"), nil, 0o644)
		seen := make(map[string]bool, n)
		err := s.List(t.Context(), folder, func(in backend.Info) error {
			var i int
			if _, err := fmt.Sscanf(backend.Base(in.Name), "m%05d", &i); err != nil {
				return fmt.Errorf("unexpected entry %s", in.Name)
			}
			if seen[in.Name] {
				return fmt.Errorf("%s listed twice", in.Name)
			}
			seen[in.Name] = true
			if in.Size != int64(i%7) {
				return fmt.Errorf("%s: size %d, want %d", in.Name, in.Size, i%7)
			}
			return nil
		})
		if err != nil || len(seen) != n {
			t.Errorf("List(%s): %d entries, %v; want %d", folder, len(seen), err, n)
		}
		if n < 2*dirBatch {
			continue
		}
		stop := errors.New("stop")
		calls := 0
		err = s.List(t.Context(), folder, func(backend.Info) error {
			calls++
			if calls == dirBatch+3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != dirBatch+3 {
			t.Errorf("List(%s) stopped: %v after %d calls; want the callback's error after %d", folder, err, calls, dirBatch+3)
		}
		ctx, cancel := context.WithCancel(t.Context())
		calls = 0
		err = s.List(ctx, folder, func(backend.Info) error {
			if calls++; calls == 1 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls > 2*dirBatch {
			t.Errorf("List(%s) cancelled: %v after %d calls; want context.Canceled within two batches", folder, err, calls)
		}
	}
}

// TestListWhileChanging lists a large folder while other goroutines create and remove
// its members: the listing never fails, never repeats an entry, and always includes the
// members that stay (run it with -race: the listing's workers share the folder's
// descriptor).
func TestListWhileChanging(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, false)
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	const stay = 3 * dirBatch
	for i := range stay {
		if err := os.WriteFile(filepath.Join(dir, "d", fmt.Sprintf("s%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	for w := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("/d/c%d-%05d", w, i%500)
				if i%2 == 0 {
					if _, _, err := s.Put(context.Background(), name, strings.NewReader("x"), backend.Cond{}, backend.Meta{Size: 1}); err != nil {
						t.Errorf("Put(%s): %v", name, err)
						return
					}
				} else {
					_ = s.Remove(context.Background(), name, backend.Cond{})
				}
			}
		}()
	}
	for range 20 {
		seen := map[string]bool{}
		kept := 0
		err := s.List(t.Context(), "/d", func(in backend.Info) error {
			if seen[in.Name] {
				return fmt.Errorf("%s listed twice", in.Name)
			}
			seen[in.Name] = true
			if strings.HasPrefix(backend.Base(in.Name), "s") {
				kept++
			}
			return nil
		})
		if err != nil || kept != stay {
			t.Fatalf("List while changing: %v, %d of the %d members that stay", err, kept, stay)
		}
	}
	cancel()
	<-done
	<-done
}

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

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
